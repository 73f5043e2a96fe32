"""Triton python backend ``g2p``: text -> JSON list of Kokoro phoneme chunks (see docs/architecture.md).

Thin Triton I/O around :class:`pattern_tts.text.Phonemizer`; a bad item (unknown lang, text that is
not UTF-8) fails only its own request.
"""

import json
import sys
import time

# This process never runs torch, but spaCy's thinc imports it whenever it is installed: about 200 MB
# of RSS and a second of start-up for nothing. A None entry makes that import fail as "not
# installed", which thinc handles. Must come before the first import of spaCy (pattern_tts.text).
sys.modules.setdefault("torch", None)  # type: ignore[arg-type]

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from pattern_tts.text import (  # noqa: E402
    SUPPORTED_LANGS,
    JapaneseUnavailable,
    Phonemizer,
    load_vocab,
    resolve_lang,
)

WARMUP = {"j": "準備完了。"}  # first call per language loads lazily built tables


class BadRequest(ValueError):
    """A request this model refuses (answered with INVALID_ARG)."""


def _error(message: str, invalid_arg: bool) -> "pb_utils.InferenceResponse":
    code = getattr(pb_utils.TritonError, "INVALID_ARG" if invalid_arg else "INTERNAL", None)
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


def _strings(request: "pb_utils.InferenceRequest", name: str) -> list[str] | None:
    """The UTF-8 strings of BYTES input ``name`` (one per batch item); None when absent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = []
    for item in tensor.as_numpy().reshape(-1):
        try:
            values.append(item.decode("utf-8") if isinstance(item, bytes) else str(item))
        except UnicodeDecodeError as exc:
            raise BadRequest(f"input '{name}' is not valid UTF-8 (byte {exc.start})") from None
    return values


class TritonPythonModel:
    """Phonemizes each request's text with the Phonemizer of its language."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        weights_dir = config.get("parameters", {}).get("weights_dir", {}).get("string_value", "")
        if weights_dir and not weights_dir.startswith("${"):
            vocab = load_vocab(weights_dir)
            pb_utils.Logger.log_info(f"g2p: {len(vocab)} phoneme symbols from {weights_dir}/config.json")
        else:
            vocab = None
            pb_utils.Logger.log_warn("g2p: no weights_dir parameter, phonemes are not filtered to a vocab")
        start = time.perf_counter()
        self.phonemizers: dict[str, Phonemizer] = {}
        self.unavailable: dict[str, str] = {}
        for lang in SUPPORTED_LANGS:
            try:
                self.phonemizers[lang] = Phonemizer(vocab, lang)
            except JapaneseUnavailable as exc:  # an image without the Japanese dictionary: English only
                self.unavailable[lang] = str(exc)
                pb_utils.Logger.log_warn(f"g2p: lang {lang} unavailable: {exc}")
                continue
            self.phonemizers[lang].chunks(WARMUP.get(lang, "Ready."))
        pb_utils.Logger.log_info(
            f"g2p: ready, langs {','.join(self.phonemizers)}, loaded in {time.perf_counter() - start:.1f} s"
        )

    def _chunks(self, text: str, lang: str) -> str:
        try:
            code = resolve_lang(lang)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        phonemizer = self.phonemizers.get(code)
        if phonemizer is None:
            raise BadRequest(
                f"lang {code!r} is not installed on this server: {self.unavailable.get(code, '')}"
            )
        return json.dumps([c.to_dict() for c in phonemizer.chunks(text)], ensure_ascii=False)

    def _infer(self, request: "pb_utils.InferenceRequest") -> "pb_utils.Tensor":
        texts = _strings(request, "text")
        if texts is None:
            raise BadRequest("input 'text' is required")
        langs = _strings(request, "lang") or ["a"]
        if len(langs) == 1:
            langs = langs * len(texts)
        if len(langs) != len(texts):
            raise BadRequest(f"{len(texts)} texts but {len(langs)} langs")
        out = [self._chunks(text, lang).encode("utf-8") for text, lang in zip(texts, langs, strict=True)]
        return pb_utils.Tensor("chunks", np.array(out, dtype=np.object_).reshape(-1, 1))

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            start = time.perf_counter()
            try:
                tensor = self._infer(request)
            except BadRequest as exc:
                pb_utils.Logger.log_warn(f"g2p: bad request: {exc}")
                responses.append(_error(str(exc), invalid_arg=True))
                continue
            except Exception as exc:  # one failed request must not fail the batch
                pb_utils.Logger.log_error(f"g2p: request failed: {type(exc).__name__}: {exc}")
                responses.append(_error(f"g2p failed: {type(exc).__name__}: {exc}", invalid_arg=False))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            pb_utils.Logger.log_verbose(
                f"g2p: {tensor.as_numpy().shape[0]} item(s) in {1000 * (time.perf_counter() - start):.1f} ms"
            )
        return responses

    def finalize(self) -> None:
        pb_utils.Logger.log_info("g2p: finalized")
