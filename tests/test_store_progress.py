"""A watch's progress notification promises that every event up to its revision was sent:
it must never overtake an event frame queued at the moment its timer fires (the apiserver's
watch cache and the informers behind it drop events at or below a revision they were told
of)."""

from __future__ import annotations

import asyncio

from store.memory import MemoryStore


async def test_progress_never_overtakes_a_queued_event() -> None:
    store = MemoryStore(progress_interval=0.001)
    promised, progress, late = 0, 0, []

    async def watch() -> None:
        nonlocal promised, progress
        async for frame in store.watch(b"/a/", range_end=b"/a0"):
            rev = frame["header"]["revision"]
            if frame.get("progress"):
                promised, progress = max(promised, rev), progress + 1
            elif rev <= promised:
                late.append(rev)

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.01)
    for i in range(300):  # writes timed like the progress timer: the race comes up often
        await store.put(b"/a/x", b"%d" % i)
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert progress > 0 and late == []
