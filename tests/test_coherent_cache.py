"""The caches coherent across replicas: filled only when safe, served only while listening."""

from __future__ import annotations

from consentry.coherent_cache import EVERYONE, CoherentCache


def _listening(size: int = 10) -> CoherentCache[str | None]:
    cache: CoherentCache[str | None] = CoherentCache(size)
    cache.start()
    return cache


def test_a_read_that_overlapped_a_change_to_its_key_or_to_every_key_is_not_kept() -> None:
    cache = _listening()
    for change in ("learner-1", EVERYONE):
        epoch = cache.epoch
        cache.forget(change)  # the change is heard while the read is under way
        cache.fill("learner-1", "read", epoch)
        assert cache.get("learner-1") == (False, None)


def test_a_read_that_overlapped_changes_to_other_keys_only_is_kept() -> None:
    cache = _listening()
    epoch = cache.epoch
    cache.forget("learner-2")
    cache.forget("learner-3")
    cache.fill("learner-1", "read", epoch)
    assert cache.get("learner-1") == (True, "read")


def test_a_read_that_overlapped_more_changes_than_are_remembered_is_not_kept() -> None:
    cache = _listening()
    epoch = cache.epoch
    for n in range(5000):  # more than the changes a read can check itself against
        cache.forget(f"other-{n}")
    cache.fill("learner-1", "read", epoch)
    assert cache.get("learner-1") == (False, None)


def test_a_change_drops_its_key_and_everyone_drops_every_key() -> None:
    cache = _listening()
    for key in ("a", "b", "c"):
        cache.fill(key, key, cache.epoch)
    cache.forget("a")
    assert [cache.get(key)[0] for key in "abc"] == [False, True, True]
    cache.forget(EVERYONE)
    assert [cache.get(key)[0] for key in "abc"] == [False, False, False]


def test_none_is_a_value_that_is_kept() -> None:
    cache = _listening()
    cache.fill("learner-1", None, cache.epoch)  # "no record" is worth keeping too
    assert cache.get("learner-1") == (True, None)


def test_nothing_is_kept_or_served_while_not_listening() -> None:
    cache = _listening()
    cache.fill("a", "kept", cache.epoch)
    epoch = cache.epoch
    cache.stop()
    assert cache.get("a") == (False, None)
    cache.fill("b", "filled while off", cache.epoch)
    cache.start()
    assert cache.get("a") == (False, None)  # kept before the listener was lost
    assert cache.get("b") == (False, None)  # filled while nothing listened
    cache.fill("c", "began before the loss", epoch)
    assert cache.get("c") == (False, None)
    cache.fill("d", "after", cache.epoch)
    assert cache.get("d") == (True, "after")


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache = _listening(size=0)
    cache.fill("a", "read", cache.epoch)
    assert cache.get("a") == (False, None)


def test_the_least_recently_used_key_leaves_first() -> None:
    cache = _listening(size=2)
    for key in ("a", "b"):
        cache.fill(key, key, cache.epoch)
    assert cache.get("a")[0]  # "b" is now the least recently used
    cache.fill("c", "c", cache.epoch)
    assert [cache.get(key)[0] for key in "abc"] == [True, False, True]
    cache.fill("a", "again", cache.epoch)  # filling an existing key makes it the most recent
    cache.fill("d", "d", cache.epoch)
    assert [cache.get(key)[0] for key in "acd"] == [True, False, True]
