"""Which options a llama-server build takes, read from its --help: the real binary, and an
older build's help."""

from __future__ import annotations

from app.core.servers.options import known_options, parse_help

# an older llama-server's help (before the speculative options were renamed)
OLD_HELP = """\
-c,    --ctx-size N                     size of the prompt context (default: 4096, 0 = loaded from model)
-fa,   --flash-attn [on|off|auto]       set Flash Attention use ('on', 'off', or 'auto', default: 'auto')
-nkvo, --no-kv-offload                  disable KV offload
--no-mmap                               do not memory-map model (slower load but may reduce pageouts if not using mlock)
-md,   --model-draft FNAME              draft model for speculative decoding (default: unused)
--draft-max, --draft, --draft-n N       number of tokens to draft for speculative decoding (default: 16)
-ngld, --gpu-layers-draft, --n-gpu-layers-draft N
                                        number of layers to store in VRAM for the draft model
"""


def test_the_help_of_the_real_binary(llama_server_bin: str) -> None:
    known = known_options(llama_server_bin)
    assert known is not None
    assert {
        "-c",
        "--ctx-size",
        "-md",
        "--model-draft",
        "--spec-type",
        "--spec-draft-n-max",
    } <= known
    # this build lists --draft-max only to say it was removed: not an option it takes
    assert "--draft-max" not in known
    assert known_options(llama_server_bin) is known  # read once per binary file


def test_an_older_help() -> None:
    known = parse_help(OLD_HELP)
    assert {"--draft-max", "--draft", "-md", "--no-kv-offload", "-ngld"} <= known
    assert "--spec-type" not in known and "N" not in known


def test_a_binary_that_cannot_say(tmp_path) -> None:
    assert known_options(tmp_path / "no-such-binary") is None
