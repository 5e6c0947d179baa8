"""Solution to tour exercise 2 (try it yourself first)."""


def topological_order(root):
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        t, children_done = stack.pop()
        if children_done:          # everything t was computed from is already in order
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for parent, needed in zip(t._ctx.inputs, t._ctx.needs_input_grad):
                if needed and id(parent) not in visited:   # needed when the op ran
                    stack.append((parent, False))
    return order[::-1]             # post-order reversed: consumers before producers
