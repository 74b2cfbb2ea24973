"""The one scanner of model folders (the catalogue's MODEL_DIRS, the first-run table), on
real GGUF files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gguf import MODEL_ARCH_NAMES

import app.core.discovery.gguf_info as gguf_info
from app.config import Settings
from app.core.discovery.folders import SETTING
from app.core.discovery.folders import model_dirs as model_dirs_of
from app.core.discovery.gguf_info import EMBEDDING_ARCHS, InfoCache, read_gguf_info
from app.core.discovery.scan import ModelScanner
from app.core.models.catalogue import Catalogue
from tests.support.gguf_tree import write_gguf, write_mmproj

Q4_K_M, Q8_0 = 15, 7  # llama.cpp's file types


def build(root: Path) -> Path:
    """One MODEL_DIRS entry with every case the scanner tells apart."""
    m = root / "models"
    lmc = m / "lmstudio-community"
    write_gguf(lmc / "Qwen3-4B-GGUF" / "Qwen3-4B-Q4_K_M.gguf", "qwen3", file_type=Q4_K_M)
    gemma = lmc / "gemma-3-4b-it-GGUF"  # two quantizations and a shared mmproj
    write_gguf(gemma / "gemma-3-4b-it-Q4_K_M.gguf", "gemma3", file_type=Q4_K_M)
    write_gguf(gemma / "gemma-3-4b-it-Q8_0.gguf", "gemma3", file_type=Q8_0)
    write_mmproj(gemma / "mmproj-model-f16.gguf")
    phi = m / "bartowski" / "Phi-4-GGUF"  # two quantizations the header does not name
    write_gguf(phi / "Phi-4-Q5_K_S.gguf", "phi3", file_type=None)
    write_gguf(phi / "Phi-4-Q6_K.gguf", "phi3", file_type=None)
    write_gguf(m / "loose-model.gguf")
    flat = m / "flat"  # the seed's flat folder: the mmproj pairs by name only
    write_gguf(flat / "Qwen3-VL-8B-Q4_K_M.gguf", "qwen3vl", file_type=Q4_K_M)
    write_mmproj(flat / "mmproj-Qwen3-VL-8B-F16.gguf")
    write_gguf(flat / "other-llm.gguf")
    write_gguf(
        m / "nomic-ai" / "nomic-embed-text-v1.5-GGUF" / "nomic-embed-text-v1.5.Q8_0.gguf",
        "nomic-bert",
        file_type=Q8_0,
    )
    write_gguf(
        m / "Qwen" / "Qwen3-Embedding-0.6B-GGUF" / "Qwen3-Embedding-0.6B-Q8_0.gguf",
        "qwen3",
        file_type=Q8_0,
        kv={"qwen3.pooling_type": 3},  # LAST: an LLM architecture that embeds
    )
    write_gguf(
        m / "gpustack" / "bge-reranker-v2-m3-GGUF" / "bge-reranker-v2-m3-Q8_0.gguf",
        "bert",
        name="bge m3",
        file_type=Q8_0,
        kv={"bert.pooling_type": 4},  # RANK
    )
    write_gguf(m / "named" / "Qwen3-Reranker-0.6B.gguf", "qwen3", name="Qwen3 Reranker 0.6B")
    big = m / "someone" / "Big-GGUF"
    write_gguf(big / "Big-Q4_K_M-00001-of-00002.gguf", tensors={"a": (10, 10)})
    write_gguf(big / "Big-Q4_K_M-00002-of-00002.gguf", tensors={"b": (5, 10)})
    write_gguf(m / "a" / "dup.gguf")  # two files wanting one key
    write_gguf(m / "b" / "dup.gguf")
    write_gguf(m / ".hidden" / "secret.gguf")
    write_gguf(m / "role" / "role-model.gguf")  # a role's file in the catalogue test
    (m / "broken").mkdir()
    (m / "broken" / "not-a-model.gguf").write_bytes(b"not a gguf file at all")
    good = write_gguf(root / "good.gguf", vocab=500).read_bytes()
    (m / "broken" / "cut.gguf").write_bytes(good[:300])
    return m


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return build(tmp_path)


def table(scan, root: Path) -> dict[str, tuple]:
    def rel(p: Path | None) -> str | None:
        return p.relative_to(root).as_posix() if p else None

    return {rel(m.path): (m.key, m.type, m.quant, rel(m.mmproj), m.aliases) for m in scan.models}


def test_the_scan_of_one_folder(models: Path) -> None:
    scan = ModelScanner().scan([models])
    lmc = "lmstudio-community"
    assert table(scan, models) == {
        f"{lmc}/Qwen3-4B-GGUF/Qwen3-4B-Q4_K_M.gguf": (
            f"{lmc}/qwen3-4b", "llm", "Q4_K_M", None,
            ("Qwen3-4B-Q4_K_M", "Qwen3-4B-Q4_K_M.gguf"),
        ),
        f"{lmc}/gemma-3-4b-it-GGUF/gemma-3-4b-it-Q4_K_M.gguf": (
            f"{lmc}/gemma-3-4b-it@q4_k_m", "llm", "Q4_K_M",
            f"{lmc}/gemma-3-4b-it-GGUF/mmproj-model-f16.gguf",
            ("gemma-3-4b-it-Q4_K_M", "gemma-3-4b-it-Q4_K_M.gguf"),
        ),
        f"{lmc}/gemma-3-4b-it-GGUF/gemma-3-4b-it-Q8_0.gguf": (
            f"{lmc}/gemma-3-4b-it@q8_0", "llm", "Q8_0",
            f"{lmc}/gemma-3-4b-it-GGUF/mmproj-model-f16.gguf",
            ("gemma-3-4b-it-Q8_0", "gemma-3-4b-it-Q8_0.gguf"),
        ),
        "bartowski/Phi-4-GGUF/Phi-4-Q5_K_S.gguf": (
            "bartowski/phi-4@q5_k_s", "llm", "Q5_K_S", None,
            ("Phi-4-Q5_K_S", "Phi-4-Q5_K_S.gguf"),
        ),
        "bartowski/Phi-4-GGUF/Phi-4-Q6_K.gguf": (
            "bartowski/phi-4@q6_k", "llm", "Q6_K", None, ("Phi-4-Q6_K", "Phi-4-Q6_K.gguf"),
        ),
        "loose-model.gguf": ("loose-model", "llm", "Q4_K_M", None, ("loose-model.gguf",)),
        "flat/Qwen3-VL-8B-Q4_K_M.gguf": (
            "Qwen3-VL-8B-Q4_K_M", "llm", "Q4_K_M", "flat/mmproj-Qwen3-VL-8B-F16.gguf",
            ("Qwen3-VL-8B-Q4_K_M.gguf",),
        ),
        "flat/other-llm.gguf": ("other-llm", "llm", "Q4_K_M", None, ("other-llm.gguf",)),
        "nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.Q8_0.gguf": (
            "nomic-ai/nomic-embed-text-v1.5", "embedding", "Q8_0", None,
            ("nomic-embed-text-v1.5.Q8_0", "nomic-embed-text-v1.5.Q8_0.gguf"),
        ),
        "Qwen/Qwen3-Embedding-0.6B-GGUF/Qwen3-Embedding-0.6B-Q8_0.gguf": (
            "qwen/qwen3-embedding-0.6b", "embedding", "Q8_0", None,
            ("Qwen3-Embedding-0.6B-Q8_0", "Qwen3-Embedding-0.6B-Q8_0.gguf"),
        ),
        "gpustack/bge-reranker-v2-m3-GGUF/bge-reranker-v2-m3-Q8_0.gguf": (
            "gpustack/bge-reranker-v2-m3", "reranker", "Q8_0", None,
            ("bge-reranker-v2-m3-Q8_0", "bge-reranker-v2-m3-Q8_0.gguf"),
        ),
        "named/Qwen3-Reranker-0.6B.gguf": (
            "Qwen3-Reranker-0.6B", "reranker", "Q4_K_M", None, ("Qwen3-Reranker-0.6B.gguf",),
        ),
        "someone/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf": (
            "someone/big", "llm", "Q4_K_M", None,
            ("Big-Q4_K_M-00001-of-00002", "Big-Q4_K_M-00001-of-00002.gguf"),
        ),
        "a/dup.gguf": ("dup", "llm", "Q4_K_M", None, ("dup.gguf",)),
        "b/dup.gguf": ("dup-2", "llm", "Q4_K_M", None, ("dup", "dup.gguf")),
        "role/role-model.gguf": ("role-model", "llm", "Q4_K_M", None, ("role-model.gguf",)),
    }  # fmt: skip
    broken = models / "broken"
    assert scan.problems == [
        f"Skipped {broken / 'cut.gguf'}: it is truncated: the GGUF header ends early.",
        f"Skipped {broken / 'not-a-model.gguf'}: it is not a GGUF file (wrong magic number).",
    ]
    assert all(m.folder == models for m in scan.models)
    assert [m.vision for m in scan.models].count(True) == 3
    big = next(m for m in scan.models if m.key == "someone/big")
    assert big.info.n_params == 150  # both shards' tensors
    assert big.info.size_bytes == sum(p.stat().st_size for p in big.path.parent.iterdir())
    assert len({m.key for m in scan.models}) == len(scan.models)


def test_keys_stay_unique_next_to_the_roles_and_hf_keys_stay(models: Path, tmp_path: Path) -> None:
    """The catalogue lists the scan beside FamilyLog's two roles: a role's file once, under
    the role's key; a scanned key a role already uses (in any case) gets a number."""
    hub = tmp_path / "hub"
    repo = hub / "models--Qwen--Qwen3-1.7B-GGUF" / "snapshots" / "rev1"
    write_gguf(repo / "Qwen3-1.7B-Q8_0.gguf", "qwen3", file_type=Q8_0)
    dirs = [models, hub, models / "lmstudio-community"]  # the third is inside the first
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        MODEL_DIRS=os.pathsep.join(map(str, dirs)),
        LLM_MODEL_GGUF=str(models / "role" / "role-model.gguf"),
        LLM_MODEL_ID="LMStudio-Community/Qwen3-4B",
        VISION_MODEL_GGUF=str(models / "flat" / "other-llm.gguf"),
        VISION_MODEL_ID="DUP",
    )
    catalogue = Catalogue(lambda: settings)
    scanned = ModelScanner().scan(dirs)
    assert len(scanned.models) == len({m.path.resolve() for m in scanned.models}) == 17
    assert all("mmproj" not in m.path.name for m in scanned.models)
    assert catalogue.scan() == scanned.problems
    catalogue.refresh()
    keys = {Path(e.path).name: e.key for e in catalogue.entries() if not e.role}
    assert keys["Qwen3-4B-Q4_K_M.gguf"] == "lmstudio-community/qwen3-4b-2"
    assert keys["Qwen3-1.7B-Q8_0.gguf"] == "Qwen/Qwen3-1.7B-GGUF"
    dups = sorted(e.key for e in catalogue.entries() if e.path.endswith("dup.gguf"))
    assert dups == ["dup-2", "dup-2-2"]  # the scan's "dup" and "dup-2", then the role's "DUP"
    assert "role-model.gguf" not in keys and "other-llm.gguf" not in keys  # the roles' files
    assert len(catalogue.entries()) == 17


def test_a_second_scan_reads_no_header(models: Path, monkeypatch) -> None:
    reads: list[str] = []

    def counting(path):
        reads.append(Path(path).name)
        return read_gguf_info(path)

    monkeypatch.setattr(gguf_info, "read_gguf_info", counting)
    scanner = ModelScanner()
    first = scanner.scan([models])
    n_files = 20  # 16 models, 2 mmproj, 2 broken files; no later shard, no hidden file
    assert len(reads) == n_files and scanner.cache.reads == n_files
    second = scanner.scan([models])
    assert len(reads) == n_files
    assert second.models == first.models and second.problems == first.problems
    loose = models / "loose-model.gguf"
    st = loose.stat()
    os.utime(loose, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    scanner.scan([models])
    assert reads[n_files:] == ["loose-model.gguf"]
    shard2 = models / "someone" / "Big-GGUF" / "Big-Q4_K_M-00002-of-00002.gguf"
    os.utime(shard2, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    scanner.scan([models])  # a later shard changed: the split model is read again
    assert reads[n_files + 1 :] == ["Big-Q4_K_M-00001-of-00002.gguf"]


def test_a_missing_shard_is_a_problem(tmp_path: Path) -> None:
    m = tmp_path / "m"
    first = write_gguf(m / "x" / "Y-GGUF" / "Y-00001-of-00003.gguf")
    write_gguf(m / "x" / "Y-GGUF" / "Y-00002-of-00003.gguf")
    scan = ModelScanner().scan([m])
    assert scan.models == []
    assert scan.problems == [
        f"Skipped {first}: it is split in 3 files but Y-00003-of-00003.gguf is missing."
    ]


def test_model_dirs(tmp_path: Path) -> None:
    home = tmp_path / "h"

    def model_dirs(*args, **kw) -> list[Path]:
        folders = model_dirs_of(*args, **kw)
        return [f.path for f in folders]

    assert {f.source for f in model_dirs_of("/a:/b", home=home, platform="linux")} == {SETTING}
    assert model_dirs("~/a:/b::/c:~", home=home, platform="linux") == [
        home / "a",
        Path("/b"),
        Path("/c"),
        home,
    ]
    assert model_dirs(r"C:\models;~\lm;;D:\x", home=home, platform="win32") == [
        Path(r"C:\models"),
        home / "lm",
        Path(r"D:\x"),
    ]
    assert model_dirs("/a:/a", home=home, platform="darwin") == [Path("/a")]
    env = {"HOME": str(home)}
    defaults = model_dirs("", home=home, environ=env, platform="linux")
    assert defaults[:2] == [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]
    assert home / ".cache" / "huggingface" / "hub" in defaults
    assert model_dirs(" ; ", home=home, environ=env, platform="win32") == defaults
    assert model_dirs(f"/x{os.pathsep}/y", home=home) == [Path("/x"), Path("/y")]


def test_model_dirs_setting(monkeypatch) -> None:
    assert Settings(_env_file=None).MODEL_DIRS == ""  # type: ignore[call-arg]
    monkeypatch.setenv("MODEL_DIRS", "/x:/y")
    assert Settings(_env_file=None).MODEL_DIRS == "/x:/y"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "arch, kv, name, expected",
    [
        ("llama", {}, None, "llm"),
        ("bert", {}, None, "embedding"),
        ("jina-bert-v3", {}, None, "embedding"),
        ("qwen3", {"qwen3.pooling_type": 1}, None, "embedding"),
        ("qwen3", {"qwen3.pooling_type": 0}, None, "llm"),  # NONE: no pooling
        ("bert", {"bert.pooling_type": 4}, None, "reranker"),
        ("qwen3", {"general.type": "reranker"}, None, "reranker"),
        ("llama", {}, "Some ReRanker", "reranker"),
    ],
)
def test_model_type(tmp_path: Path, arch, kv, name, expected) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf", arch, kv=kv, name=name))
    assert info.model_type == expected
    assert info.pooling_type == next(iter(v for k, v in kv.items() if "pooling" in k), None)
    assert not info.is_mmproj


def test_quantization_from_the_header_then_the_name_then_the_tensors(tmp_path: Path) -> None:
    def quant(name: str, file_type: int | None) -> str | None:
        return read_gguf_info(write_gguf(tmp_path / name, file_type=file_type)).quantization

    assert quant("Phi-4-Q6_K.gguf", Q8_0) == "Q8_0"  # the header wins over the name
    assert quant("Phi-4-Q6_K.gguf", None) == "Q6_K"
    assert quant("Phi-4-Q6_K-00002-of-00002.gguf", None) == "Q6_K"
    assert quant("phi-4.gguf", None) == "F32"  # neither says: the tensors' type
    assert quant("phi-4-odd.gguf", 9999) == "F32"  # a file type llama.cpp does not know


def test_mmproj_by_arch_or_name(tmp_path: Path) -> None:
    assert read_gguf_info(write_mmproj(tmp_path / "projector.gguf")).is_mmproj
    assert read_gguf_info(write_gguf(tmp_path / "x-MMPROJ-f16.gguf")).is_mmproj


def test_embedding_archs_are_llama_cpp_names() -> None:
    assert set(MODEL_ARCH_NAMES.values()) >= EMBEDDING_ARCHS


def test_info_cache_remembers_an_unreadable_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF")
    cache = InfoCache()
    assert cache.get(junk) is None and cache.get(junk) is None and cache.reads == 1


def test_reading_headers_imports_no_numpy() -> None:
    code = "import sys, app.core.discovery.scan; assert 'numpy' not in sys.modules, 'numpy'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
