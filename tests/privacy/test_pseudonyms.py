"""A subject's keyed hash is HMAC-SHA256 of its id under the service's key, kept or not."""

from __future__ import annotations

import hashlib
import hmac

from consentry.pseudonyms import _REMEMBERED, Pseudonyms

KEY = b"k" * 32


def _reference(key: bytes, subject_id: str) -> str:
    return hmac.new(key, subject_id.encode(), hashlib.sha256).hexdigest()


def test_each_hash_is_hmac_sha256_of_the_id_under_the_key() -> None:
    pseudonyms = Pseudonyms(KEY)
    for subject_id in ("learner-1", "anon:0d4c1e", "élève-7", "learner-1"):
        assert pseudonyms.of(subject_id) == _reference(KEY, subject_id)


def test_kept_hashes_belong_to_their_own_key() -> None:
    one, other = Pseudonyms(KEY), Pseudonyms(b"o" * 32)
    assert one.of("learner-1") != other.of("learner-1")
    assert other.of("learner-1") == _reference(b"o" * 32, "learner-1")


def test_hashes_past_what_is_kept_are_still_right() -> None:
    pseudonyms = Pseudonyms(KEY)
    subjects = [f"learner-{number}" for number in range(_REMEMBERED + 10)]
    for subject_id in subjects:
        pseudonyms.of(subject_id)
    assert pseudonyms.of(subjects[0]) == _reference(KEY, subjects[0])
    assert pseudonyms.of(subjects[-1]) == _reference(KEY, subjects[-1])
