"""Voice catalogue: files, aliases, blends, errors (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import APIError
from gateway.voices import ALIASES, KOKORO_V1_VOICES, VoiceCatalogue, voice_info

VOICES = ["af_bella", "af_sarah", "af_heart", "af_sky", "am_adam", "bf_emma", "jf_alpha"]


@pytest.fixture
def catalogue(tmp_path: Path) -> VoiceCatalogue:
    voices = tmp_path / "voices"
    voices.mkdir()
    for name in VOICES:
        (voices / f"{name}.pt").write_bytes(b"")
    (voices / "README.txt").write_text("not a voice")
    return VoiceCatalogue(voices)


def test_lists_voice_files_and_present_aliases(catalogue: VoiceCatalogue) -> None:
    ids = [v.id for v in catalogue.list()]
    assert ids[: len(VOICES)] == sorted(VOICES)
    aliases = catalogue.aliases()
    assert aliases["af"] == "af_bella+af_sarah"
    assert aliases["am"] == "am_adam"
    assert aliases["alloy"] == "af_heart"  # af_alloy absent: next candidate
    assert aliases["nova"] == "af_sky"
    assert aliases["fable"] == "bf_emma"
    assert set(aliases) == set(ALIASES)  # every alias has a fallback among these voices
    assert set(ids) == set(VOICES) | set(ALIASES)


def test_aliases_whose_voices_are_missing_are_not_listed(tmp_path: Path) -> None:
    (tmp_path / "af_bella.pt").write_bytes(b"")
    cat = VoiceCatalogue(tmp_path)
    assert "af" not in cat.aliases()  # af_sarah missing
    assert "am" not in cat.aliases()
    assert cat.aliases()["alloy"] == "af_bella"
    with pytest.raises(APIError) as err:
        cat.resolve("am")
    assert err.value.param == "voice"


def test_openai_names_fall_back_to_the_packaged_japanese_voices(tmp_path: Path) -> None:
    # The packaged weights (the default without the hub) have only these five voices: a client that
    # sends OpenAI's names unchanged (Home Assistant's key check sends `alloy`) must still get speech.
    for name in ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"):
        (tmp_path / f"{name}.pt").write_bytes(b"")
    cat = VoiceCatalogue(tmp_path)
    openai_names = set(ALIASES) - {"af", "am"}
    aliases = cat.aliases()
    assert set(aliases) == openai_names
    assert aliases["alloy"] == "jf_alpha"
    assert aliases["onyx"] == "jm_kumo"
    info = {v.id: v for v in cat.list()}
    for name in openai_names:  # the gender of the English voice the name stands for first
        assert (info[name].gender or "?")[0] == ALIASES[name][0][1], name
    assert len({aliases[n] for n in ("alloy", "nova", "sage", "shimmer")}) == 4  # different voices
    assert cat.resolve("nova").lang_code == "j"  # reads English text as English (SpeechService.g2p_lang)


def test_catalogue_rescans_directory(tmp_path: Path) -> None:
    cat = VoiceCatalogue(tmp_path)
    assert cat.voices() == ()
    (tmp_path / "am_adam.pt").write_bytes(b"")
    assert cat.voices() == ("am_adam",)


def test_language_and_gender_from_prefix(catalogue: VoiceCatalogue) -> None:
    info = {v.id: v for v in catalogue.list()}
    assert info["af_heart"].language == "American English"
    assert info["af_heart"].gender == "female"
    assert info["bf_emma"].language == "British English"
    assert info["am_adam"].gender == "male"
    assert info["jf_alpha"].language == "Japanese"
    assert info["onyx"].alias_of == "am_adam"
    assert info["onyx"].gender == "male"
    assert info["af"].alias_of == "af_bella+af_sarah"
    assert info["af"].gender == "female"
    assert voice_info("custom").language is None
    assert voice_info("heart").language is None  # not a Kokoro name: prefix tells nothing


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("af_heart", "af_heart"),
        ("  AF_Heart ", "af_heart"),
        ("af", "af_bella+af_sarah"),
        ("alloy", "af_heart"),
        ("af_bella+af_sky", "af_bella+af_sky"),
        ("af_bella(2)+af_sky(1)", "af_bella(2)+af_sky"),
        ("af_bella(2) + af_sky( 2 )", "af_bella+af_sky"),
        ("af_bella(0.5)+am_adam(1.5)", "af_bella(0.5)+am_adam(1.5)"),
        ("af_sky(3)", "af_sky"),
        ("af(2)+af_sky(1)", "af_bella+af_sarah+af_sky"),
        ("af+af_bella", "af_bella(1.5)+af_sarah(0.5)"),
    ],
)
def test_resolve(catalogue: VoiceCatalogue, spec: str, canonical: str) -> None:
    assert catalogue.resolve(spec).spec == canonical


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("nobody", "'nobody'"),
        ("af_bella+nobody", "'nobody' in blend"),
        ("af_bella(0)+af_sky", "positive finite"),
        ("af_bella(-1)+af_sky", "positive finite"),
        ("af_bella(inf)+af_sky", "positive finite"),
        ("af_bella(nan)+af_sky", "positive finite"),
        ("af_bella(x)+af_sky", "not a number"),
        ("af_bella++af_sky", "malformed voice component"),
        ("af_bella(1", "malformed voice component"),
        ("", "empty"),
    ],
)
def test_resolve_errors(catalogue: VoiceCatalogue, spec: str, needle: str) -> None:
    with pytest.raises(APIError) as err:
        catalogue.resolve(spec)
    assert err.value.status_code == 400
    assert err.value.param == "voice"
    assert needle in err.value.message


def test_unknown_voice_hints_at_voice_list(catalogue: VoiceCatalogue) -> None:
    with pytest.raises(APIError) as err:
        catalogue.resolve("nobody")
    body = err.value.body()["error"]
    assert "/v1/audio/voices" in body["message"]
    assert body["type"] == "invalid_request_error"
    assert body["code"] == "voice_not_found"


def test_lang_code_of_resolved_voice(catalogue: VoiceCatalogue) -> None:
    assert catalogue.resolve("bf_emma").lang_code == "b"
    assert catalogue.resolve("af").lang_code == "a"
    assert catalogue.resolve("fable").lang_code == "b"
    assert catalogue.resolve("jf_alpha").lang_code == "j"


def test_without_voices_dir_lists_kokoro_v1_voices() -> None:
    cat = VoiceCatalogue(None)
    assert cat.voices() == tuple(sorted(KOKORO_V1_VOICES))
    assert len(KOKORO_V1_VOICES) == 54
    assert cat.aliases()["alloy"] == "af_alloy"
    assert cat.aliases()["onyx"] == "am_onyx"
    assert cat.resolve("echo").spec == "am_echo"
