"""Splitting output into lines: never at a read boundary, whatever the bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.core.runs.output import LineSplitter, RunOutput
from tests.support.wait import until


def expected_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    if not data:
        return []
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]


@given(
    st.lists(
        st.sampled_from([b"a", b"\n", b"\r", "é".encode(), "привет".encode(), b"\xff", b"xyz"])
    ),
    st.lists(st.integers(min_value=0, max_value=200), max_size=20),
)
def test_chunk_boundaries_never_change_the_lines(parts, cuts) -> None:
    data = b"".join(parts)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    splitter = LineSplitter()
    got: list[str] = []
    for a, b in zip(points, points[1:], strict=False):
        got += splitter.feed(data[a:b])
    got += splitter.close()
    # a multi-byte character split between reads decodes the same as whole:
    # lines are decoded only once complete
    assert got == expected_lines(data)


def test_an_endless_line_is_passed_on_in_parts() -> None:
    splitter = LineSplitter(max_line=1000)
    out = []
    for _ in range(50):
        out += splitter.feed(b"x" * 100)
    assert out and all(len(line) <= 1100 for line in out)
    assert sum(map(len, out)) + sum(map(len, splitter.close())) == 5000


async def test_batches_go_out_as_lists_and_to_the_file(tmp_path) -> None:
    batches: list[list[str]] = []
    out = RunOutput(tmp_path / "run.log", batches.append, flush_interval=0.2, max_batch=4)
    out.add(["first"])
    assert batches == [["first"]]  # the first line after a quiet spell goes out at once
    out.add(["a", "b"])
    assert len(batches) == 1  # then lines wait for the interval or a full batch
    out.add(["c", "d"])
    assert batches[1] == ["a", "b", "c", "d"]
    out.add(["e"])
    await until(lambda: len(batches) == 3, 10)
    assert batches[2] == ["e"] and list(out.tail) == ["first", "a", "b", "c", "d", "e"]
    out.note("from the app")
    out.close()
    assert (
        tmp_path / "run.log"
    ).read_text() == "first\na\nb\nc\nd\ne\n[familylog-tray] from the app\n"


async def test_an_unwritable_log_is_reported_not_fatal(tmp_path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("x")
    batches: list[list[str]] = []
    out = RunOutput(blocked / "runs" / "run.log", batches.append)
    out.add(["still shown"])
    out.close()
    assert batches == [["still shown"]]
    assert out.write_error and "Cannot write the run log" in out.write_error
