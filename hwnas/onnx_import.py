"""Models from elsewhere: the Arch of an ONNX file, read from its graph (``onnx`` only, no torch).

:func:`arch_of_onnx_file` answers "which Arch is this ONNX file": the ``hwnas.arch`` metadata
of a file ``hwnas export`` wrote, else :func:`arch_from_graph`, which walks the graph of a
MobileNet-family network exported by torch (TorchScript or dynamo exporter), timm or hwnas:

* the stem: the first Conv (group 1) on the image input, BatchNormalization (or folded into
  the Conv's bias), an activation;
* MBConv blocks: [1x1 Conv expansion + BN + act] -> kxk depthwise Conv (group == channels)
  + BN + act -> [squeeze-excite: GlobalAveragePool or ReduceMean over H, W -> 1x1 Conv ->
  Relu -> 1x1 Conv -> HardSigmoid / Sigmoid / Add(3)-Clip(0,6)-Div(6) -> Mul] -> 1x1 Conv
  projection + BN -> [Add of the block's input: the residual]; skip blocks (1x1 Conv + BN
  that changes the shape, no depthwise after it);
* the head: a 1x1 Conv + BN + act followed by the global pooling; MobileNetV3's pre-logits
  layer (Gemm, MatMul + Add, or a 1x1 Conv on the pooled map, then its activation);
* the classifier: Gemm (or MatMul + Add) to the classes.

Activations: Relu -> relu, Clip(0, 6) -> relu6, HardSwish or x * HardSigmoid(x) or
x * Clip(x + 3, 0, 6) / 6 -> hswish. Flatten, Reshape, Squeeze, Identity and Dropout between
them are looked through. What cannot be mapped is named in one line: the first node that
does not fit and why, e.g. ``node '/features.3/Conv' (Conv, group 3 of 96 channels): not a
MobileNet block``.

Files larger than :data:`MAX_ONNX_BYTES` are refused before anything is read (the weights of
a MobileNet are a few MB; protobuf's own limit is 2 GB), and so are files that are not ONNX.
The recovered Arch has hwnas's channel rules: an expansion ratio e with
``make_divisible(in * e, 8)`` == the graph's width, an SE ratio r with
``make_divisible(hidden * r, 8)`` == its width; widths those rules cannot give are refused.
An identity skip block (a skip that keeps the shape, no activation) is no node of the graph:
the recovered Arch is the same network without it (same pieces, same costs and latency).
What the Arch cannot say: the SE gate (hwnas: sigmoid in relu blocks, hard-sigmoid in hswish
blocks), biases beside BatchNorm, the input normalization; latency predictions use hwnas's
pieces of the same shapes.
"""

from __future__ import annotations

import math
from pathlib import Path

from .arch import (
    ACTS,
    MAX_BLOCKS,
    Arch,
    Block,
    Head,
    Stem,
    make_divisible,
    num_str,
    out_size,
    parse_string,
    validate,
)
from .errors import HwnasError

#: ONNX files above this size are refused before they are read
MAX_ONNX_BYTES = 512 * 2**20
ARCH_METADATA = "hwnas.arch"  # as hwnas.export writes it
_PASS = ("Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze")
_POOL = ("GlobalAveragePool", "ReduceMean")


def load_onnx(path: str | Path):
    """The onnx.ModelProto of ``path`` (external data not loaded); one-line HwnasError for a
    missing, too large (> :data:`MAX_ONNX_BYTES`) or non-ONNX file."""
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    if not p.is_file():
        raise HwnasError(f"{p}: no such ONNX file" if not p.exists() else
                         f"{p}: not a regular file; expected an ONNX file")
    size = p.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise HwnasError(f"{p}: {size:,} bytes is too large for an ONNX model hwnas reads (at "
                         f"most {MAX_ONNX_BYTES:,})")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError, UnicodeDecodeError) as e:
        raise HwnasError(f"{p}: not a readable ONNX file ({type(e).__name__})") from None
    if not model.graph.node:
        raise HwnasError(f"{p}: not an ONNX model (no graph nodes)")
    return model


def arch_of_onnx_file(path: str | Path) -> Arch:
    """The Arch of an ONNX file: its ``hwnas.arch`` metadata (files ``hwnas export`` wrote),
    else read from the graph (:func:`arch_from_graph`)."""
    model = load_onnx(path)
    props = {m.key: m.value for m in model.metadata_props}
    if ARCH_METADATA in props:
        try:
            said = parse_string(props[ARCH_METADATA])
        except HwnasError as e:
            raise HwnasError(f"{path}: its '{ARCH_METADATA}' metadata is not an arch string "
                             f"({e})") from None
        try:  # a file must not claim one network and hold another
            seen = arch_from_graph(model, str(path))
        except HwnasError:
            return said  # a graph this reader does not know: the metadata is all there is
        from .pieces import arch_pieces

        if [p.key for p in arch_pieces(seen)] != [p.key for p in arch_pieces(said)]:
            raise HwnasError(f"{path}: its '{ARCH_METADATA}' metadata says "
                             f"{said.to_string()[:80]}, but its graph is "
                             f"{seen.to_string()[:80]}: the file disagrees with itself")
        return said
    try:
        return arch_from_graph(model, str(path))
    except HwnasError as e:
        why = str(e).removeprefix(f"{path}: ")
        raise HwnasError(f"{path}: not an ONNX file exported by hwnas (no '{ARCH_METADATA}' "
                         f"metadata) and its graph is not a network hwnas can read: {why}") from None


def arch_from_graph(model, source: str = "model") -> Arch:
    """Recover the Arch of ``model`` (an onnx.ModelProto) from its nodes; HwnasError naming
    the first node that does not fit a MobileNet-family network."""
    return _Reader(model, source).read()


def initializer_elements(model) -> int:
    """Weights of the model as its layers use them: elements of the constant inputs of its
    Conv, Gemm, MatMul and BatchNormalization nodes, counted once per use (torch's exporter
    stores equal tensors once). BatchNorm folded into a Conv's bias (torch's TorchScript
    exporter in eval mode) is one number per channel where hwnas counts BN's two."""
    init = {t.name: math.prod(t.dims) for t in model.graph.initializer}
    for n in model.graph.node:  # torch's exporter shares equal tensors through Identity nodes
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    return sum(init.get(x, 0) for n in model.graph.node
               if n.op_type in ("Conv", "Gemm", "MatMul", "BatchNormalization")
               for x in n.input[1:])


# ---- the graph walk ------------------------------------------------------------------------------

class _Reader:
    def __init__(self, model, source: str):
        from onnx import numpy_helper

        self.g, self.source = model.graph, source
        self.init = {t.name: t for t in self.g.initializer}
        self._np = numpy_helper
        self.producer, self.users = {}, {}
        for n in self.g.node:
            for o in n.output:
                self.producer[o] = n
            for x in n.input:
                if x:
                    self.users.setdefault(x, []).append(n)
        self.index = {id(n): i for i, n in enumerate(self.g.node)}

    # -- small helpers --
    def name(self, n) -> str:
        return n.name or f"#{self.index[id(n)]}"

    def fail(self, n, what: str, why: str = "not a MobileNet block"):
        where = f"node '{self.name(n)}' ({n.op_type}{', ' + what if what else ''})" if n is not None \
            else what
        raise HwnasError(f"{self.source}: {where}: {why}")

    def attr(self, n, key: str, default=None):
        from onnx import helper

        for a in n.attribute:
            if a.name == key:
                return helper.get_attribute_value(a)
        return default

    def const(self, name: str):
        """The value of a constant tensor (initializer, Constant or Identity of one), or None."""
        if name in self.init:
            return self._np.to_array(self.init[name])
        n = self.producer.get(name)
        if n is not None and n.op_type == "Constant":
            t = self.attr(n, "value")
            if t is not None:
                return self._np.to_array(t)
            for k in ("value_float", "value_int"):
                if self.attr(n, k) is not None:
                    return self.attr(n, k)
        if n is not None and n.op_type == "Identity":
            return self.const(n.input[0])
        return None

    def shape(self, name: str) -> tuple[int, ...] | None:
        v = self.const(name)
        return None if v is None else tuple(getattr(v, "shape", ()))

    def users_of(self, t: str, skip_pass: bool = False) -> list:
        out = []
        for n in self.users.get(t, []):
            if skip_pass and n.op_type in _PASS:
                out.extend(self.users_of(n.output[0], True))
            else:
                out.append(n)
        return out

    def through(self, t: str) -> str:
        """``t`` followed through single-use Identity / Dropout / Flatten / Reshape nodes."""
        while True:
            us = self.users.get(t, [])
            if len(us) == 1 and us[0].op_type in _PASS:
                t = us[0].output[0]
            else:
                return t

    def scalar(self, name: str) -> float | None:
        import numpy as np

        v = self.const(name)
        if v is None:
            return None
        try:
            a = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            return None
        return float(a.reshape(-1)[0]) if a.size == 1 else None

    # -- activations --
    def hsigmoid(self, t: str):
        """(output, nodes) of a hard-sigmoid of ``t`` (HardSigmoid, or Add 3 -> Clip 0..6 ->
        Div 6 / Mul 1/6), or None."""
        for n in self.users.get(t, []):
            if n.op_type == "HardSigmoid" and math.isclose(self.attr(n, "alpha", 0.2), 1 / 6,
                                                           rel_tol=1e-3):
                return n.output[0]
            if n.op_type == "Add" and self._other_scalar(n, t) == 3.0:
                us = self.users.get(n.output[0], [])
                if len(us) == 1 and self.clip6(us[0]):
                    for d in self.users.get(us[0].output[0], []):
                        if self._is_div6(d, us[0].output[0]):
                            return d.output[0]
        return None

    def _other_scalar(self, n, t: str) -> float | None:
        others = [x for x in n.input if x != t]
        return self.scalar(others[0]) if len(others) == 1 else None

    def _is_div6(self, n, t: str) -> bool:
        v = self._other_scalar(n, t)
        return v is not None and ((n.op_type == "Div" and math.isclose(v, 6.0))
                                  or (n.op_type == "Mul" and math.isclose(v, 1 / 6, rel_tol=1e-4)))

    def clip6(self, n) -> bool:
        if n.op_type != "Clip":
            return False
        lo = self.scalar(n.input[1]) if len(n.input) > 1 and n.input[1] else self.attr(n, "min")
        hi = self.scalar(n.input[2]) if len(n.input) > 2 and n.input[2] else self.attr(n, "max")
        return lo is not None and hi is not None and lo == 0 and math.isclose(hi, 6.0)

    def activation(self, t: str) -> tuple[str, str]:
        """(activation, its output) applied to ``t``, ('', t) if none."""
        us = [n for n in self.users.get(t, [])]
        for n in us:
            if n.op_type == "Relu":
                return "relu", n.output[0]
            if self.clip6(n):
                return "relu6", n.output[0]
            if n.op_type == "HardSwish":
                return "hswish", n.output[0]
        hs = self.hsigmoid(t)
        if hs is not None:
            for m in self.users.get(hs, []):
                if m.op_type == "Mul" and set(m.input) == {t, hs}:
                    return "hswish", m.output[0]
        for n in us:  # x * Clip(x + 3, 0, 6) then / 6
            if n.op_type == "Add" and self._other_scalar(n, t) == 3.0:
                for c in self.users.get(n.output[0], []):
                    if not self.clip6(c):
                        continue
                    for m in self.users.get(c.output[0], []):
                        if m.op_type == "Mul" and set(m.input) == {t, c.output[0]}:
                            for d in self.users.get(m.output[0], []):
                                if self._is_div6(d, m.output[0]):
                                    return "hswish", d.output[0]
        for n in us:
            if n.op_type in ("Sigmoid", "LeakyRelu", "Elu", "Tanh", "Gelu", "PRelu", "Selu"):
                self.fail(n, "", f"activation {n.op_type} is not one of {', '.join(ACTS)}")
        return "", t

    # -- convolutions --
    def conv(self, n) -> dict:
        """Shape facts of a Conv node, the BN after it (if any), and its output tensor after
        BN: {node, cin, cout, k, stride, group, out}."""
        w = self.shape(n.input[1]) if len(n.input) > 1 else None
        if w is None or len(w) != 4:
            self.fail(n, "weights not a constant 4-D tensor", "cannot read its shape")
        group = int(self.attr(n, "group", 1))
        k, k2 = w[2], w[3]
        strides = list(self.attr(n, "strides", [1, 1]))
        dil = list(self.attr(n, "dilations", [1, 1]))
        pads = list(self.attr(n, "pads", [0, 0, 0, 0]))
        auto = self.attr(n, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if k != k2 or k % 2 == 0 or len(set(strides)) != 1 or strides[0] not in (1, 2) \
                or set(dil) != {1}:
            self.fail(n, f"kernel {k}x{k2}, stride {strides}, dilation {dil}",
                      "only square odd kernels, stride 1 or 2, no dilation")
        if auto in ("NOTSET", "") and set(pads) != {k // 2}:
            if not (auto == "NOTSET" and k == 1 and set(pads) == {0}):
                self.fail(n, f"kernel {k}, pads {pads}", f"padding must be {k // 2} (same)")
        out = n.output[0]
        us = self.users.get(out, [])
        if len(us) == 1 and us[0].op_type == "BatchNormalization":
            out = us[0].output[0]
        return {"node": n, "cin": w[1] * group, "cout": w[0], "k": k, "stride": strides[0],
                "group": group, "out": out}

    def conv_user(self, t: str):
        """The Conv node that reads ``t`` (one), or None."""
        convs = [n for n in self.users.get(t, []) if n.op_type == "Conv" and n.input[0] == t]
        if len(convs) > 1:
            self.fail(convs[1], "", "a tensor read by two convolutions is not a chain of blocks")
        return convs[0] if convs else None

    # -- the network --
    def read(self) -> Arch:
        inputs = [i for i in self.g.input if i.name not in self.init]
        if len(inputs) != 1:
            raise HwnasError(f"{self.source}: {len(inputs)} graph inputs; a MobileNet has one "
                             "image input")
        inp = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inp.type.tensor_type.shape.dim]
        if len(dims) != 4 or None in dims[1:] or dims[2] != dims[3]:
            raise HwnasError(f"{self.source}: input '{inp.name}' has shape {dims}; expected "
                             "N x C x R x R with fixed C and R (export with a fixed input size)")
        channels, res = dims[1], dims[2]
        t = inp.name
        n = self.conv_user(t)
        if n is None:
            us = self.users.get(t, [])
            self.fail(us[0] if us else None, "" if us else f"input '{t}'",
                      "the image input must go straight into the stem's convolution")
        st = self.conv(n)
        if st["group"] != 1:
            self.fail(n, f"group {st['group']}", "the stem must be a full convolution")
        act, t = self.activation(st["out"])
        if not act:
            self.fail(n, "stem", "no relu / relu6 / hswish after the stem")
        stem = Stem(out=st["cout"], kernel=st["k"], stride=st["stride"], act=act)
        c, h = stem.out, out_size(res, stem.kernel, stem.stride)
        blocks: list[Block] = []
        head = None
        while True:
            n = self.conv_user(t)
            if n is None:
                break
            cv = self.conv(n)
            if cv["cin"] != c:
                self.fail(n, f"{cv['cin']} input channels", f"expected {c}")
            if len(blocks) >= MAX_BLOCKS:
                self.fail(n, "", f"more than {MAX_BLOCKS} blocks (the limit)")
            if cv["group"] != 1:
                if not cv["group"] == cv["cin"] == cv["cout"]:
                    self.fail(n, f"group {cv['group']} of {cv['cin']} channels")
                b, t = self.mbconv(t, c, None, cv)
            elif cv["k"] != 1:
                self.fail(n, f"kernel {cv['k']} with group 1 after the stem",
                          "not a MobileNet block (only 1x1 full convolutions)")
            else:
                act, y = self.activation(cv["out"])
                dw = self.conv_user(y)
                if dw is not None and self.conv(dw)["group"] > 1:
                    b, t = self.mbconv(t, c, (cv, act), self.conv(dw), y)
                elif self._pool(y) is not None:  # the head conv
                    if not act:
                        self.fail(n, "head", "no activation after the head's 1x1 convolution")
                    head, t = Head(out=cv["cout"], act=act), y
                    break
                else:  # a skip block: 1x1 conv (stride) + BN [+ act]
                    b = Block.skip(cv["cout"], cv["stride"], act)
                    if not b.projects(c):
                        self.fail(n, "1x1 convolution keeping the shape",
                                  "not a MobileNet block (a skip conv changes the shape)")
                    t = y
            blocks.append(b)
            h, c = out_size(h, b.kernel, b.stride), b.out
        if not blocks:
            us = self.users_of(t)
            self.fail(us[0] if us else None, "" if us else "graph", "no MBConv block after the stem")
        fc, classes, hd_act = self.classifier(t, c if head is None else head.out)
        if fc:
            if head is None:
                raise HwnasError(f"{self.source}: a linear layer before the classifier without "
                                 "a head convolution: hwnas's head has it only after one")
            if hd_act != head.act:
                raise HwnasError(f"{self.source}: the pre-logits layer's activation {hd_act} "
                                 f"differs from the head conv's {head.act}")
            head = Head(head.out, head.act, fc)
        arch = Arch(resolution=res, channels=channels, stem=stem, blocks=tuple(blocks),
                    head=head, classes=classes)
        validate(arch, self.source)
        return arch

    def mbconv(self, x: str, cin: int, expand, dw: dict, y: str | None = None):
        """One MBConv block from its (optional) expansion and its depthwise conv; returns
        (Block, the block's output tensor)."""
        n = dw["node"]
        hidden = dw["cout"]
        if not (dw["group"] == dw["cin"] == hidden):
            self.fail(n, f"group {dw['group']} of {dw['cin']} channels")
        act, z = self.activation(dw["out"])
        if expand is not None:
            ecv, eact = expand
            if ecv["stride"] != 1:
                self.fail(ecv["node"], f"stride {ecv['stride']}", "an expansion has stride 1")
            if eact != act:
                self.fail(n, f"activation {act or 'none'}",
                          f"differs from the expansion's {eact or 'none'} (one per block)")
            e = _ratio(hidden, cin)
            if e is None or hidden == cin:
                self.fail(ecv["node"], f"{cin} -> {hidden} channels",
                          "no expansion ratio e gives make_divisible(in * e, 8) == that width")
        else:
            e = 1.0
        if not act:
            self.fail(n, "depthwise", "no activation after the depthwise convolution")
        se, z = self.squeeze_excite(z, hidden)
        p = self.conv_user(z)
        if p is None:
            us = self.users_of(z)
            self.fail(us[0] if us else n, "", "no 1x1 projection after the depthwise conv")
        pc = self.conv(p)
        if pc["k"] != 1 or pc["group"] != 1 or pc["stride"] != 1:
            self.fail(p, f"kernel {pc['k']}, group {pc['group']}", "not a 1x1 projection")
        extra, _ = self.activation(pc["out"])
        if extra:
            self.fail(p, f"{extra} after the projection", "MBConv projections are linear")
        b = Block(kernel=dw["k"], expand=e, out=pc["cout"], stride=dw["stride"], se=se,
                  act=act)
        out = pc["out"]
        adds = [a for a in self.users.get(out, []) if a.op_type == "Add" and x in a.input]
        if b.residual(cin) != bool(adds):
            self.fail(p, "projection", "a residual add where hwnas has none, or none where it "
                      "has one (stride 1, same channels)")
        return b, (adds[0].output[0] if adds else out)

    def _pool(self, t: str):
        """The global-pooling node reading ``t`` (GlobalAveragePool, ReduceMean over H, W)."""
        for n in self.users.get(t, []):
            if n.op_type == "GlobalAveragePool":
                return n
            if n.op_type == "ReduceMean":
                axes = self.attr(n, "axes")
                if axes is None and len(n.input) > 1:
                    v = self.const(n.input[1])
                    axes = None if v is None else [int(a) for a in v.reshape(-1)]
                if axes is not None and sorted(a % 4 for a in axes) == [2, 3]:
                    return n
        return None

    def squeeze_excite(self, z: str, hidden: int) -> tuple[float, str]:
        """(SE ratio, output) of an SE on ``z``; (0, z) if there is none."""
        pool = self._pool(z)
        if pool is None:
            return 0.0, z
        s = self.through(pool.output[0])
        r = self.conv_user(s)
        if r is None:
            self.fail(pool, "squeeze-excite", "no 1x1 convolution after the pooling")
        rc = self.conv(r)
        act, s = self.activation(rc["out"])
        if act != "relu":
            self.fail(r, f"SE activation {act or 'none'}", "SE squeezes with a relu")
        e = self.conv_user(s)
        if e is None or self.conv(e)["cout"] != hidden:
            self.fail(r, "squeeze-excite", f"no 1x1 convolution back to {hidden} channels")
        g = self.conv(e)["out"]
        gate = self.hsigmoid(g)
        if gate is None:
            sig = [n for n in self.users.get(g, []) if n.op_type == "Sigmoid"]
            gate = sig[0].output[0] if sig else None
        if gate is None:
            self.fail(e, "SE gate", "no sigmoid / hard-sigmoid after the SE convolution")
        mul = [m for m in self.users.get(gate, []) if m.op_type == "Mul" and z in m.input]
        if not mul:
            self.fail(e, "SE gate", "the gate does not multiply the depthwise output")
        ratio = _se_ratio(rc["cout"], hidden)
        if ratio is None:
            self.fail(r, f"SE {hidden} -> {rc['cout']} channels",
                      "no ratio r gives make_divisible(hidden * r, 8) == that width")
        return ratio, mul[0].output[0]

    def classifier(self, t: str, c: int) -> tuple[int, int, str]:
        """(pre-logits width or 0, classes, pre-logits activation) of pooling -> [linear ->
        act] -> linear on ``t`` (``c`` channels)."""
        pool = self._pool(t)
        if pool is None:
            us = self.users_of(t)
            self.fail(us[0] if us else None, "" if us else "end of the features",
                      "expected global average pooling before the classifier")
        s = self.through(pool.output[0])
        widths, acts = [], []
        outputs = {o.name for o in self.g.output}
        while s not in outputs:
            n, s_out, width = self.linear(s, c)
            widths.append(width)
            c = width
            act, s = self.activation(self.through(s_out))
            s = self.through(s)
            acts.append(act)
            if len(widths) > 2:
                self.fail(n, "", "more than two linear layers after the pooling")
        if not widths:
            self.fail(pool, "", "no linear classifier after the pooling")
        if acts[-1]:
            raise HwnasError(f"{self.source}: an activation after the classifier's last linear "
                             "layer")
        if len(widths) == 2 and not acts[0]:
            raise HwnasError(f"{self.source}: two linear layers without an activation between")
        return (widths[0] if len(widths) == 2 else 0), widths[-1], acts[0] if len(acts) == 2 else ""

    def linear(self, s: str, c: int):
        """(node, output, width) of a linear layer on the pooled vector: Gemm, MatMul [+ Add]
        or a 1x1 Conv (timm's conv_head on the pooled map)."""
        us = self.users.get(s, [])
        if len(us) != 1:
            self.fail(us[0] if us else None, "" if us else f"tensor '{s}'",
                      "expected one linear layer after the pooling")
        n = us[0]
        if n.op_type == "Conv":
            cv = self.conv(n)
            if cv["k"] != 1 or cv["group"] != 1:
                self.fail(n, f"kernel {cv['k']}", "not a linear layer on the pooled map")
            return n, cv["out"], cv["cout"]
        if n.op_type in ("Gemm", "MatMul"):
            w = self.shape(n.input[1])
            if w is None or len(w) != 2:
                self.fail(n, "", "weights not a constant matrix")
            trans = n.op_type == "Gemm" and self.attr(n, "transB", 0)
            cin, width = (w[1], w[0]) if trans else (w[0], w[1])
            if cin != c:
                self.fail(n, f"{cin} inputs", f"expected {c}")
            out = n.output[0]
            bias = [a for a in self.users.get(out, []) if a.op_type == "Add"] \
                if n.op_type == "MatMul" else []
            return n, (bias[0].output[0] if bias else out), width
        self.fail(n, "", "expected a linear layer (Gemm / MatMul / 1x1 Conv) after the pooling")


def _ratio(hidden: int, cin: int) -> float | None:
    """An expansion ratio e (4 decimals) with make_divisible(cin * e, 8) == hidden."""
    for e in (hidden / cin, round(hidden / cin, 4), round(hidden / cin, 2), round(hidden / cin, 1)):
        e = float(num_str(round(e, 4)))
        if e >= 1 and make_divisible(cin * e, 8) == hidden:
            return e
    return None


def _se_ratio(se: int, hidden: int) -> float | None:
    """An SE ratio r with make_divisible(hidden * r, 8) == se: 0.25 (MobileNetV3) if it
    gives that width, else the exact ratio (4 decimals)."""
    for r in (0.25, round(se / hidden, 4), round(se / hidden, 2)):
        if 0 < r < 1 and make_divisible(hidden * r, 8) == se:
            return r
    return None


__all__ = ["MAX_ONNX_BYTES", "arch_from_graph", "arch_of_onnx_file", "initializer_elements",
           "load_onnx"]
