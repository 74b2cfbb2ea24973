"""Will it fit: the estimate from a remote header (weights + KV cache at the configured
context, placement's margin) against the free memory placement measures."""

from __future__ import annotations

from app.core.downloads.fit import FITS, NO_FIT, TIGHT, judge
from app.core.lifecycle.placement import OVERHEAD_BYTES, SAFETY_FACTOR, Free
from tests.support.downloads import GB, Rig
from tests.support.hub import VISION_REPO, serve_pair

# The vision model's header: 36 layers, 8 KV heads of 4096 / 32 = 128 values each.
KV_AT_8K = 36 * 8192 * 8 * (128 + 128) * 2


async def test_fit_reads_the_header_and_weighs_weights_and_kv_cache(tmp_path, hub, hub_files):
    serve_pair(hub, hub_files)
    rig = Rig(tmp_path)
    rig.settings = rig.settings.model_copy(update={"LLAMA_CTX_SIZE": 8192})
    d = rig.service()
    files = await d.repo_files(VISION_REPO)
    q4, q8 = sorted(files.models, key=lambda m: m.name)
    fit = await d.fit(files, q4)
    need = int((q4.total_size + KV_AT_8K) * SAFETY_FACTOR) + OVERHEAD_BYTES
    assert fit.need == need and fit.context == 8192
    assert fit.verdict == FITS and fit.free == 16 * GB and fit.what == "available RAM"
    assert fit.describe().startswith("fits: needs about 1.8 GB at 8,192 tokens of context")
    # The Q8_0 file shares the family's header: read once, from its beginning only.
    await d.fit(files, q8)
    assert len(hub.downloads_of(q4.files[0].path)) == 1
    assert hub.downloads_of(q8.files[0].path) == []
    # The model's own context (262,144 tokens) when the setting is 0: 32 times the cache.
    rig.settings = rig.settings.model_copy(update={"LLAMA_CTX_SIZE": 0})
    big = await d.fit(files, q4)
    assert big.context == 262144 and big.need > 32 * KV_AT_8K


def test_verdicts():
    need = 10 * GB
    assert judge(need, Free(12 * GB, "free GPU memory")).verdict == FITS
    # Free once the app's own models are unloaded: tight, and it says so.
    tight = judge(need, Free(6 * GB, "free GPU memory"), reclaimable=5 * GB)
    assert tight.verdict == TIGHT and "once other models are unloaded" in tight.describe()
    # Short only by the estimate's margin: tight.
    assert judge(need, Free(9 * GB, "available RAM")).verdict == TIGHT
    no = judge(need, Free(4 * GB, "available RAM"))
    assert no.verdict == NO_FIT
    assert no.describe() == "does not fit: needs about 10 GB; 4.0 GB available RAM"
