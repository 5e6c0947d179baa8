"""Tour exercise 2 (stop 2, backward and the topological order): order the graph.

Return every tensor reachable from `root` (through `t._ctx.inputs`) that requires grad,
as a list in which each tensor comes BEFORE every tensor it was computed from: root first,
leaves last. backward walks this list, so a node's gradient is complete (summed over all
its uses) before it is passed on. No recursion: the check builds a chain 5000 ops deep,
past Python's recursion limit. Check: python -m tinygen.tour check 2
"""


def topological_order(root):
    raise NotImplementedError("tour exercise 2: a depth-first walk with an explicit stack")
