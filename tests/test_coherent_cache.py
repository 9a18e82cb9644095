"""The caches coherent across replicas: filled only when safe, served only while listening."""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from consentry.coherent_cache import _RECENT_CHANGES, EVERYONE, CoherentCache


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


def test_a_read_that_overlapped_a_change_is_not_kept_however_many_keys_changed() -> None:
    # Each start puts the key's change at another place among the changes to other keys, of
    # which the cache forgets the oldest now and then; the read checks itself against them all.
    for before in range(8000, 8400, 20):
        cache = _listening()
        for n in range(before):
            cache.forget(f"other-{n}")
        epoch = cache.epoch
        cache.forget("learner-1")
        for n in range(before, before + _RECENT_CHANGES - 1):
            cache.forget(f"other-{n}")
        cache.fill("learner-1", "read", epoch)
        assert cache.get("learner-1") == (False, None), before


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


# Server processes: this process's own connections are served by OURS and OTHER_OF_OURS;
# ELSEWHERE serves another replica.
OURS, OTHER_OF_OURS, ELSEWHERE = 101, 102, 201


def test_a_value_this_process_committed_survives_its_own_notice_only() -> None:
    for later in (ELSEWHERE, OURS):
        cache = _listening()
        epoch = cache.epoch  # taken before the statement that commits revision 2
        cache.keep_own("learner-1", "revision 2", epoch, OURS)
        assert cache.get("learner-1") == (True, "revision 2")
        cache.heard("learner-1", OURS)  # the commit's own notice
        assert cache.get("learner-1") == (True, "revision 2")
        cache.heard("learner-1", later)  # a later change, by another replica or not kept
        assert cache.get("learner-1") == (False, None)


def test_a_notice_of_another_server_process_drops_a_kept_commit() -> None:
    for sender in (ELSEWHERE, OTHER_OF_OURS):
        cache = _listening()
        cache.keep_own("learner-1", "revision 2", cache.epoch, OURS)
        cache.heard("learner-1", sender)
        assert cache.get("learner-1") == (False, None)


def test_a_commit_whose_own_notice_was_heard_first_is_kept_and_owes_nothing() -> None:
    cache = _listening()
    epoch = cache.epoch
    cache.heard("learner-1", OURS)  # the commit's notice, heard before its callback ran
    cache.keep_own("learner-1", "revision 2", epoch, OURS)
    assert cache.get("learner-1") == (True, "revision 2")
    cache.heard("learner-1", OURS)  # a later change through the same server process
    assert cache.get("learner-1") == (False, None)


def test_the_notice_of_the_commit_before_does_not_stop_the_next_from_being_kept() -> None:
    cache = _listening()
    cache.keep_own("learner-1", "revision 2", cache.epoch, OURS)
    epoch = cache.epoch
    cache.heard("learner-1", OURS)  # revision 2's notice, heard while revision 3 is written
    cache.keep_own("learner-1", "revision 3", epoch, OURS)
    cache.heard("learner-1", OURS)  # revision 3's own
    assert cache.get("learner-1") == (True, "revision 3")
    cache.heard("learner-1", OURS)  # a later change through the same server process
    assert cache.get("learner-1") == (False, None)


def test_a_commit_is_not_kept_over_a_change_heard_from_elsewhere() -> None:
    for heard in ("learner-1", EVERYONE):
        cache = _listening()
        epoch = cache.epoch
        cache.heard(heard, ELSEWHERE)
        cache.keep_own("learner-1", "revision 2", epoch, OURS)
        assert cache.get("learner-1") == (False, None)
        cache.fill("learner-1", "revision 3", cache.epoch)  # read back from the database
        cache.heard("learner-1", OURS)  # owed nothing: it kept nothing
        assert cache.get("learner-1") == (False, None)


def test_a_commit_is_not_kept_over_another_kept_since() -> None:
    cache = _listening()
    epoch = cache.epoch
    cache.keep_own("learner-1", "revision 3", cache.epoch, OTHER_OF_OURS)
    cache.keep_own("learner-1", "revision 2", epoch, OURS)  # its callback ran late
    assert cache.get("learner-1") == (False, None)


def test_a_read_that_overlapped_a_kept_commit_does_not_fill_over_it() -> None:
    cache = _listening()
    read_began = cache.epoch
    cache.keep_own("learner-1", "revision 2", cache.epoch, OURS)
    cache.fill("learner-1", "revision 1", read_began)
    assert cache.get("learner-1") == (True, "revision 2")


def test_nothing_is_kept_of_a_commit_while_not_listening_at_size_zero_or_unsent() -> None:
    for cache, sender in (
        (CoherentCache[str | None](10), OURS),
        (_listening(size=0), OURS),
        (_listening(), 0),  # no server process ran it
    ):
        cache.keep_own("learner-1", "revision 2", cache.epoch, sender)
        assert cache.get("learner-1") == (False, None)
        if not cache.listening:
            cache.start()
            assert cache.get("learner-1") == (False, None)
    cache = _listening()
    cache.keep_own("learner-1", "revision 2", cache.epoch, OURS)
    cache.stop()
    cache.start()
    cache.fill("learner-1", "revision 3", cache.epoch)
    cache.heard("learner-1", OURS)  # owed nothing any more: the listener that owed it was lost
    assert cache.get("learner-1") == (False, None)


def test_a_change_to_every_key_drops_what_was_kept_and_what_was_owed() -> None:
    cache = _listening()
    cache.keep_own("learner-1", "revision 2", cache.epoch, OURS)
    cache.heard(EVERYONE, ELSEWHERE)
    assert cache.get("learner-1") == (False, None)
    cache.fill("learner-1", "revision 3", cache.epoch)
    cache.heard("learner-1", OURS)
    assert cache.get("learner-1") == (False, None)


KEY = "learner-1"


def _index(data: st.DataObject, items: list[Any]) -> int:
    return data.draw(st.integers(0, len(items) - 1))


class OneKeyInAnyOrder(RuleBasedStateMachine):
    """Commits to one key by this process and by others, in any order PostgreSQL allows:
    notices heard in commit order, each whenever; this process's commit callbacks, reads and
    fills whenever, a server process of its own held from statement to callback. Values are
    revisions."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: CoherentCache[int] = CoherentCache(10)
        self.cache.start()
        self.revision = 0  # the newest committed
        self.notices: deque[tuple[int, int]] = deque()  # (revision, sender) not heard yet
        self.heard_up_to = 0  # the newest revision whose notice was heard
        self.sent: list[tuple[int, int]] = []  # (epoch, sender) of statements not committed
        self.committed: list[tuple[int, int, int]] = []  # (revision, epoch, sender) to keep
        self.reads: list[tuple[int, int | None]] = []  # (epoch, revision read, once read)

    def _busy(self) -> set[int]:
        return {sender for _, sender in self.sent} | {sender for *_, sender in self.committed}

    @rule(sender=st.sampled_from([OURS, OTHER_OF_OURS]))
    def send_a_statement(self, sender: int) -> None:
        if sender not in self._busy():
            self.sent.append((self.cache.epoch, sender))

    @rule(data=st.data())
    def commit_it(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        epoch, sender = self.sent.pop(_index(data, self.sent))
        self.revision += 1
        self.notices.append((self.revision, sender))
        self.committed.append((self.revision, epoch, sender))

    @rule(sender=st.sampled_from([ELSEWHERE, OURS, OTHER_OF_OURS]))
    def commit_elsewhere_or_unkept(self, sender: int) -> None:
        # A change this process does not keep (another replica's, or one it only forgets).
        if sender not in self._busy():
            self.revision += 1
            self.notices.append((self.revision, sender))

    @rule(data=st.data())
    def run_a_commit_callback(self, data: st.DataObject) -> None:
        if not self.committed:
            return
        revision, epoch, sender = self.committed.pop(_index(data, self.committed))
        self.cache.keep_own(KEY, revision, epoch, sender)

    @rule()
    def hear_the_next_notice(self) -> None:
        if not self.notices:
            return
        self.heard_up_to, sender = self.notices.popleft()
        self.cache.heard(KEY, sender)

    @rule()
    def begin_a_read(self) -> None:
        self.reads.append((self.cache.epoch, None))

    @rule(data=st.data())
    def read_or_fill(self, data: st.DataObject) -> None:
        if not self.reads:
            return
        index = _index(data, self.reads)
        epoch, read = self.reads[index]
        if read is None:
            self.reads[index] = (epoch, self.revision)
        else:
            del self.reads[index]
            self.cache.fill(KEY, read, epoch)

    @rule()
    def lose_the_listener(self) -> None:
        # Notices not heard by then never will be; the cache starts again from nothing.
        self.cache.stop()
        self.notices.clear()
        self.heard_up_to = self.revision
        self.cache.start()

    @invariant()
    def never_older_than_a_change_heard_and_current_once_all_are(self) -> None:
        found, kept = self.cache.get(KEY)
        if found:
            assert kept is not None
            assert kept >= self.heard_up_to
            if not self.notices:
                assert kept == self.revision


OneKeyInAnyOrder.TestCase.settings = settings(max_examples=1000, stateful_step_count=30)
test_one_key_in_any_order = OneKeyInAnyOrder.TestCase
