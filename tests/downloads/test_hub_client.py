"""The hub through huggingface_hub against the stand-in hub: search, a repository's files,
the ranged header read, and what each failure says."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.core.downloads.files import RemoteFile, group_files
from app.core.downloads.hub import HubClient
from app.core.downloads.refs import HubError, parse_ref
from tests.support.gguf_tree import write_gguf
from tests.support.hub import LLM_REPO, VISION_REPO, StandInHub, serve_pair


def test_search_finds_gguf_repositories_most_downloaded_first(hub: StandInHub, hub_files):
    serve_pair(hub, hub_files)
    hub.add_repo("someone/qwen-safetensors", {"README.md": hub_files["readme"]}, tags=())
    found = HubClient().search("qwen")
    assert [h.repo for h in found] == [LLM_REPO, VISION_REPO]  # 9000 before 5000 downloads
    assert found[0].downloads == 9000
    assert HubClient().search("no-such-model") == []
    search = [r for r in hub.requests if r.path == "/api/models"]
    assert search, "the search went to the hub's /api/models"


def test_files_have_sizes_sha256_quantization_and_paired_projectors(hub: StandInHub, hub_files):
    serve_pair(hub, hub_files)
    files = HubClient().repo_files(VISION_REPO)
    assert files.commit == hub.repos[VISION_REPO].commit
    by_name = {m.name: m for m in files.models}
    assert set(by_name) == {"Qwen3VL-8B-Instruct-Q4_K_M.gguf", "Qwen3VL-8B-Instruct-Q8_0.gguf"}
    q4 = by_name["Qwen3VL-8B-Instruct-Q4_K_M.gguf"]
    assert q4.quant == "Q4_K_M"
    assert q4.size == hub_files["vl_q4"].stat().st_size
    sha = hashlib.sha256(hub_files["vl_q4"].read_bytes()).hexdigest()
    assert q4.files[0].sha256 == sha
    # The F16 projector is preferred, and it is never a model of its own.
    assert q4.mmproj is not None and q4.mmproj.name == "mmproj-Qwen3VL-8B-Instruct-F16.gguf"
    assert q4.total_size == q4.size + hub_files["vl_mmproj_f16"].stat().st_size
    assert list(files.groups()) == ["Qwen3VL-8B-Instruct"]
    assert files.pick().name == q4.name  # Q4_K_M when none is named
    assert files.pick(quant="q8_0").name == "Qwen3VL-8B-Instruct-Q8_0.gguf"
    with pytest.raises(LookupError, match="Its quantizations: Q4_K_M, Q8_0"):
        files.pick(quant="IQ2_XS")


def test_split_models_are_one_model_and_an_incomplete_split_is_reported():
    files = [
        RemoteFile("Q4_K_M/Big-Q4_K_M-00002-of-00002.gguf", 20, "b"),
        RemoteFile("Q4_K_M/Big-Q4_K_M-00001-of-00002.gguf", 10, "a"),
        RemoteFile("Big-Q8_0-00001-of-00003.gguf", 10, "c"),
        RemoteFile("Big-F16.gguf", 50, "d"),
        RemoteFile("imatrix.gguf", 5, "e"),
        RemoteFile("README.md", 1, None),
    ]
    got = group_files("x/Big-GGUF", "abc", files)
    assert [m.label() for m in got.models] == [
        "Big-F16.gguf",
        "Big-Q4_K_M-00001-of-00002.gguf (2 files)",
    ]
    split = got.models[1]
    assert [f.path for f in split.files] == [
        "Q4_K_M/Big-Q4_K_M-00001-of-00002.gguf",
        "Q4_K_M/Big-Q4_K_M-00002-of-00002.gguf",
    ]
    assert split.size == 30 and split.quant == "Q4_K_M" and split.family == "Big"
    assert got.problems == ["Big-Q8_0 is split in 3 files but [2, 3] are missing."]
    assert got.pick(file="Big-Q4_K_M-00002-of-00002.gguf") is split


def test_header_is_read_with_ranged_requests_of_its_beginning_only(hub: StandInHub, tmp_path):
    # A real-size vocabulary (150,000 tokens and merges: a header of several MiB) before
    # 16 MiB of tensors: the header is read in ranges and the tensors never are.
    big = write_gguf(
        tmp_path / "Vocab-Q4_K_M.gguf",
        "qwen3",
        ctx=40960,
        vocab=150_000,
        tensors={"token_embd.weight": (4096, 1024)},
    )
    hub.add_repo("x/Vocab-GGUF", {"Vocab-Q4_K_M.gguf": big})
    header = HubClient().read_header("x/Vocab-GGUF", "main", "Vocab-Q4_K_M.gguf")
    assert header.get("general.architecture") == "qwen3"
    assert header.get("qwen3.context_length") == 40960
    assert header.array_lengths["tokenizer.ggml.tokens"] == 150_000
    gets = hub.downloads_of("Vocab-Q4_K_M.gguf")
    assert len(gets) >= 2, "a header over 2 MiB takes more than one range"
    assert all(g.range and g.range.startswith("bytes=") for g in gets)
    fetched = sum(int(e) - int(s) + 1 for s, e in (g.range[6:].split("-") for g in gets))
    assert fetched < big.stat().st_size / 2, (fetched, big.stat().st_size)


def test_gated_repository_says_to_accept_the_licence_and_set_hf_token(
    hub: StandInHub, hub_files, monkeypatch
):
    hub.add_repo("meta/Gated-GGUF", {"Gated-Q4_K_M.gguf": hub_files["llm_q8"]}, gated="manual")
    client = HubClient()
    files = client.repo_files("meta/Gated-GGUF")  # the listing is public, as on the hub
    assert files.gated
    with pytest.raises(HubError) as e:
        client.metadata("meta/Gated-GGUF", files.commit, "Gated-Q4_K_M.gguf")
    assert e.value.kind == "gated" and e.value.status == 401
    message = str(e.value)
    assert f"{hub.url}/meta/Gated-GGUF" in message and "licence" in message
    assert "HF_TOKEN" in message and f"{hub.url}/settings/tokens" in message
    # A token whose account was not granted access: 403, and the same advice.
    hub.grant("hf_other")
    monkeypatch.setenv("HF_TOKEN", "hf_other")
    with pytest.raises(HubError) as e:
        client.metadata("meta/Gated-GGUF", files.commit, "Gated-Q4_K_M.gguf")
    assert e.value.status == 403 and "has not been given access" in str(e.value)
    # Granted: the app's own token setting goes first.
    hub.grant("hf_granted", "meta/Gated-GGUF")
    meta = HubClient(lambda: "hf_granted").metadata(
        "meta/Gated-GGUF", files.commit, "Gated-Q4_K_M.gguf"
    )
    assert meta.size == hub_files["llm_q8"].stat().st_size
    assert hub.requests[-1].token == "hf_granted"


def test_private_or_missing_repository_and_missing_file(hub: StandInHub, hub_files):
    hub.add_repo("me/Private-GGUF", {"P-Q4_K_M.gguf": hub_files["llm_q8"]}, private=True)
    for repo in ("me/Private-GGUF", "nobody/Nothing-GGUF"):
        with pytest.raises(HubError) as e:
            HubClient().repo_files(repo)
        assert e.value.kind == "not_found"
        assert "or it is private" in str(e.value) and "HF_TOKEN" in str(e.value)
    serve_pair(hub, hub_files)
    with pytest.raises(HubError, match="no-such.gguf is not in"):
        HubClient().metadata(LLM_REPO, "main", "no-such.gguf")


def test_no_network_is_one_line(monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError) as e:
        HubClient().search("qwen")
    assert e.value.kind == "offline"
    assert str(e.value).startswith(f"No network: cannot reach 127.0.0.1:{port}")
    assert "\n" not in str(e.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        HubClient().repo_files("a/b")


@pytest.mark.parametrize(
    ("text", "repo", "file", "quant"),
    [
        ("Qwen/Qwen3-8B-GGUF", "Qwen/Qwen3-8B-GGUF", None, None),
        ("Qwen/Qwen3-8B-GGUF:Q8_0", "Qwen/Qwen3-8B-GGUF", None, "Q8_0"),
        ("https://huggingface.co/Qwen/Qwen3-8B-GGUF", "Qwen/Qwen3-8B-GGUF", None, None),
        (
            "https://huggingface.co/Qwen/Qwen3-8B-GGUF/blob/main/Qwen3-8B-Q8_0.gguf",
            "Qwen/Qwen3-8B-GGUF",
            "Qwen3-8B-Q8_0.gguf",
            None,
        ),
        ("hf.co/a/b", "a/b", None, None),
    ],
)
def test_model_names_are_read_like_lm_studio_and_llama_server_read_them(text, repo, file, quant):
    ref = parse_ref(text)
    assert (ref.repo, ref.file, ref.quant) == (repo, file, quant)


def test_a_name_that_is_no_repository_says_how_to_write_one():
    with pytest.raises(ValueError, match="publisher/name"):
        parse_ref("just-a-name")


def test_the_stand_in_answers_huggingface_hubs_own_calls(hub: StandInHub, hub_files, tmp_path):
    """Other tests may use the stand-in with the library itself: its repository info at a
    revision, its tree listing and its own download all work against it."""
    from huggingface_hub import HfApi, hf_hub_download

    serve_pair(hub, hub_files)
    api = HfApi(endpoint=hub.url)
    commit = hub.repos[VISION_REPO].commit
    info = api.model_info(VISION_REPO, revision=commit, files_metadata=True)
    assert info.sha == commit
    sizes = {s.rfilename: s.lfs.size for s in info.siblings if s.lfs}
    assert sizes["Qwen3VL-8B-Instruct-Q4_K_M.gguf"] == hub_files["vl_q4"].stat().st_size
    tree = {f.path for f in api.list_repo_tree(VISION_REPO, recursive=True)}
    assert "mmproj-Qwen3VL-8B-Instruct-F16.gguf" in tree
    got = hf_hub_download(LLM_REPO, "Qwen3-8B-Q8_0.gguf", local_dir=tmp_path, endpoint=hub.url)
    assert Path(got).read_bytes() == hub_files["llm_q8"].read_bytes()
