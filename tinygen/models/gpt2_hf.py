"""GPT-2 in the Hugging Face layout: load a pretrained folder into a tinygen GPT, save one back.

A Hugging Face GPT-2 folder holds
    config.json                   GPT2Config: n_positions, n_embd, n_layer, n_head, ...
    model.safetensors             the weights, or several shards listed (name -> file) in
    model.safetensors.index.json  {"weight_map": {"h.0.ln_1.weight": "model-00001-of-2...", ...}}
Its tensor names are nanoGPT's / ours, with or without the "transformer." prefix, except that
OpenAI's GPT-2 wrote its projections as "Conv1D" layers: y = x W + b with W [in, out], the
transpose of a Linear's [out, in] (the same fact nanoGPT's from_pretrained handles). The
causal masks "attn.bias" / "attn.masked_bias" older files carry are buffers, not weights.

Loading builds the model without drawing random initial weights (they would be overwritten;
transformers' `no_init_weights` does the same), memory-maps each file and copies tensor by
tensor into the parameters (one block of memory, Conv1D weights in their file layout),
handing the file's pages back as it goes: the weights are held once. With mmap=True nothing
is copied: the weights are copy-on-write views of the file. Nothing here runs code from the folder: JSON and safetensors are only parsed.
"""

import contextlib
import json
import os
import reprlib

import numpy as np

from tinygen import nn
from tinygen.backend import module_for
from tinygen.data.gpt2_tokenizer import resolve
from tinygen.nn import layers
from tinygen.safetensors_format import populated_empty
from tinygen.serialization import CheckpointError, MappedFile, save

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal masks, rebuilt by the model
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # all the tanh form of GELU
INDEX = "model.safetensors.index.json"


class PretrainedError(ValueError):
    """A folder that does not hold a GPT-2 model tinygen can load."""


def _fail(path, what):
    return PretrainedError(f"GPT.from_pretrained: {path}: {what}")


def read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        raise _fail(path, f"missing ({what})") from None
    except (ValueError, RecursionError) as e:
        raise _fail(path, f"not valid UTF-8 JSON ({e})") from None
    if not isinstance(value, dict):
        raise _fail(path, f"expected a JSON object, got {type(value).__name__}")
    return value


def gpt_config(path, dropout=None):
    """GPTConfig from config.json, refusing the GPT-2 variants tinygen's GPT does not build."""
    from tinygen.models.gpt import GPTConfig

    file = os.path.join(path, "config.json")
    hf = read_json(file, "the model's GPT2Config")

    def field(key, default=None, types=int, alias=None):
        value = hf.get(key, hf.get(alias, default)) if alias else hf.get(key, default)
        if not isinstance(value, types) or isinstance(value, bool) and types is not bool:
            raise _fail(file, f"{key!r} must be {getattr(types, '__name__', types)}, got "
                        f"{reprlib.repr(value)}")
        return value

    if hf.get("model_type", "gpt2") != "gpt2":
        raise _fail(file, f"model_type is {hf['model_type']!r}, not 'gpt2'")
    n_embd, n_head = field("n_embd"), field("n_head")
    sizes = {"block_size": field("n_positions", alias="n_ctx"), "vocab_size": field("vocab_size"),
             "n_layer": field("n_layer")}
    if min(*sizes.values(), n_head, n_embd) <= 0 or n_embd % n_head:
        raise _fail(file, f"sizes must be positive and n_embd ({n_embd}) a multiple of "
                    f"n_head ({n_head})")
    config = GPTConfig(**sizes, n_head=n_head, n_embd=n_embd, bias=True,
                       dropout=dropout if dropout is not None
                       else float(field("resid_pdrop", 0.1, (int, float))))
    unsupported = {  # key: (value tinygen builds, what it means)
        "activation_function": (TANH_GELUS, "the tanh form of GELU"),
        "n_inner": ((None, 4 * n_embd), "an MLP of 4 n_embd"),
        "layer_norm_epsilon": ((1e-5,), "LayerNorm eps 1e-5"),
        "scale_attn_weights": ((True,), "attention scaled by 1/sqrt(hs)"),
        "scale_attn_by_inverse_layer_idx": ((False,), "no per-layer attention scale"),
        "tie_word_embeddings": ((True,), "lm_head tied to wte"),
        "add_cross_attention": ((False,), "no cross-attention"),
    }
    defaults = {"activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
                "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                "tie_word_embeddings": True, "add_cross_attention": False}
    for key, (allowed, meaning) in unsupported.items():
        if hf.get(key, defaults.get(key)) not in allowed:
            raise _fail(file, f"{key} = {hf[key]!r} is not supported (tinygen's GPT has "
                        f"{meaning})")
    return config


def shard_files(path):
    """{file: [tensor names]} of model.safetensors, or of the shards its index lists."""
    index = os.path.join(path, INDEX)
    if not os.path.exists(index):
        return {os.path.join(path, "model.safetensors"): None}
    weight_map = read_json(index, "the shard index").get("weight_map")
    if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()):
        raise _fail(index, "'weight_map' must be an object of tensor name -> file name")
    files = {}
    for name, shard in weight_map.items():
        # a shard is a file beside the index, never a path that climbs out of the folder
        if os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise _fail(index, f"tensor {name!r}: shard {shard!r} is not a file name")
        files.setdefault(os.path.join(path, shard), []).append(name)
    return files


@contextlib.contextmanager
def no_init():
    """Build modules without drawing their random initial weights, on uninitialised memory
    (np.empty, not zeros: zero-filling GPT-2 124M's 0.5 GB costs as much as copying it).
    The loader then checks that every parameter was filled from the file."""
    names = [n for n in vars(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}
    saved_empty = layers._empty

    def empty(*shape, device="cpu"):
        return nn.Parameter(module_for(device).empty(shape, dtype=np.float32))

    try:
        for n in names:
            setattr(nn.init, n, lambda t, *args, **kwargs: t)
        layers._empty = empty
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)
        layers._empty = saved_empty


def place_in_one_block(params):
    """Make every parameter a view of one block of memory mapped in one go
    (safetensors_format.populated_empty: no page fault per 4 KB while copying). A Conv1D
    weight keeps the file's [in, out] layout there: the Linear's [out, in] weight is its
    transposed view, as torch's `.t()` would be, so loading copies bytes without a
    transpose and x @ W.T reads the block as it lies."""
    block = populated_empty(sum(p.data.size for p in params.values()), np.float32)
    start = 0
    for key, p in params.items():
        view = block[start:start + p.data.size]
        p.data = view.reshape(p.shape[::-1]).T if key.endswith(CONV1D) else view.reshape(p.shape)
        start += p.data.size


def from_pretrained(cls, name_or_path, dropout=None, mmap=False):
    """A GPT with the weights of a Hugging Face GPT-2 folder or model id (see module doc).
    mmap=True leaves float32 weights in a copy-on-write mapping of the file instead of copying
    them (MappedFile(copy_on_write=True)): loading reads nothing, the first forward pass
    reads the pages it needs, a write to a weight copies its page; the file must not be
    rewritten in place while the model lives."""
    path = resolve(name_or_path, ("config.json", "*.safetensors", INDEX))
    config = gpt_config(path, dropout)
    with no_init():
        model = cls(config)
    own = dict(model.named_parameters())  # wte.weight is lm_head.weight: listed once
    if "lm_head.weight" in own:
        own["transformer.wte.weight"] = own.pop("lm_head.weight")
    wte = own["transformer.wte.weight"]
    if not mmap:
        place_in_one_block(own)
    loaded, lm_head, head = {}, None, None
    for file, names in shard_files(path).items():
        if not os.path.exists(file):
            raise _fail(file, "missing (model.safetensors or a shard named by the index)")
        try:
            mapped = MappedFile(file, copy_on_write=mmap)
        except CheckpointError as e:
            raise _fail(file, str(e)) from None
        # with mmap=True the mapping stays open for the weights that view it
        with contextlib.nullcontext(mapped) if mmap else mapped:
            for name in mapped.entries if names is None else names:
                if name not in mapped.entries:
                    raise _fail(file, f"tensor {name!r}, listed in {INDEX}, is not in it")
                key = name if name.startswith(("transformer.", "lm_head.")) \
                    else "transformer." + name
                if key.endswith(BUFFERS):
                    continue
                if key == "lm_head.weight":  # a copy of wte in some files; must equal it
                    head = name
                    continue
                if key not in own:
                    raise _fail(file, f"unexpected tensor {name!r} (not a GPT-2 weight for "
                                f"n_layer={config.n_layer})")
                if key in loaded:
                    raise _fail(file, f"tensor {name!r} is also in {loaded[key]}")
                dtype, shape = mapped.entries[name][:2]
                param = own[key].data
                want = param.shape[::-1] if key.endswith(CONV1D) else param.shape
                if dtype.kind != "f" or shape != want:
                    raise _fail(file, f"tensor {name!r} is {dtype.name}{list(shape)}, expected "
                                f"float{list(want)}")
                if mmap:  # a view of the file's bytes (float16 is converted: a copy)
                    array = mapped.array(name).astype(np.float32, copy=False)
                    own[key].data = array.T if key.endswith(CONV1D) else array
                else:  # a Conv1D weight's .T is its [in, out] block: a contiguous copy
                    mapped.copy_into(name, param.T if key.endswith(CONV1D) else param)
                loaded[key] = file
            if head is not None:  # lm_head.weight is in this file: it must equal wte
                if "transformer.wte.weight" in loaded:  # compared in place, while mapped
                    same = bool(np.array_equal(mapped.array(head), wte.data))
                else:  # wte comes from a later shard: keep a copy until then
                    same = mapped.array(head).copy()
                lm_head, head = (file, same), None
    missing = [k for k in own if k not in loaded]
    if missing:
        raise _fail(path, f"missing tensors {', '.join(missing[:8])}"
                    + (f" and {len(missing) - 8} more" if len(missing) > 8 else ""))
    if lm_head is not None and not (lm_head[1] if isinstance(lm_head[1], bool)
                                    else np.array_equal(lm_head[1], wte.data)):
        raise _fail(lm_head[0], "'lm_head.weight' differs from 'wte.weight'; tinygen's GPT "
                    "ties them, so it cannot load an untied head")
    return model


def hf_config(config):
    """config.json for a tinygen GPTConfig (GPT2Config's fields)."""
    modern = {k: getattr(config, k, d) for k, d in
              (("norm", "layernorm"), ("mlp", "gelu"), ("pos_emb", "learned"))}
    if modern != {"norm": "layernorm", "mlp": "gelu", "pos_emb": "learned"}:
        raise ValueError(f"hf_config: GPT-2's format has no {modern}: only a GPT with "
                         f"norm='layernorm', mlp='gelu', pos_emb='learned' exports")
    out = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
           "vocab_size": config.vocab_size, "n_positions": config.block_size,
           "n_embd": config.n_embd, "n_layer": config.n_layer, "n_head": config.n_head,
           "n_inner": None, "activation_function": "gelu_new",
           "resid_pdrop": config.dropout, "embd_pdrop": config.dropout,
           "attn_pdrop": config.dropout, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
           "scale_attn_weights": True, "tie_word_embeddings": True, "use_cache": True,
           "dtype": "float32"}
    if config.vocab_size == 50257:  # GPT-2's own vocabulary: <|endoftext|> is its last id
        out.update(bos_token_id=50256, eos_token_id=50256)
    return out


def save_pretrained(model, path):
    """Write model as config.json + model.safetensors, as GPT2LMHeadModel.save_pretrained
    does: "transformer."-prefixed names, Conv1D weights [in, out], the tied lm_head left out.
    A model built with bias=False gets zero biases, which computes the same function."""
    os.makedirs(path, exist_ok=True)
    state = {}
    for key, param in model.named_parameters():
        key = "transformer.wte.weight" if key == "lm_head.weight" else key
        state[key] = param.data.T if key.endswith(CONV1D) else param.data
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is None \
                and module_name != "lm_head":
            shape = (module.weight.shape[0],)
            state[f"{module_name}.bias"] = np.zeros(shape, module.weight.data.dtype)
    save(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(model.config), f, indent=2)
    return path

