"""``BackoffPolicy``: frpc's re-login schedule, independent of the Twisted version."""
from __future__ import annotations

from twisted.trial import unittest

from frptx.client.backoff import LOGIN_BACKOFF, BackoffPolicy


class BackoffPolicyTests(unittest.TestCase):
    def test_login_schedule_doubles_from_one_second_to_twenty(self) -> None:
        self.assertEqual([LOGIN_BACKOFF.base_delay(n) for n in range(8)], [1, 2, 4, 8, 16, 20, 20, 20])

    def test_huge_attempt_counts_stay_at_the_cap(self) -> None:
        self.assertEqual(LOGIN_BACKOFF.base_delay(10_000), 20)

    def test_jitter_bounds_and_independence(self) -> None:
        policy = BackoffPolicy(jitter=0.1)
        self.assertAlmostEqual(policy.delay(3, lambda: 0.0), 7.2)
        self.assertAlmostEqual(policy.delay(3, lambda: 0.5), 8.0)
        self.assertLess(policy.delay(3, lambda: 0.999999), 8.8)
        # each delay comes from its attempt alone: an extreme draw before does not move the next one
        self.assertAlmostEqual(policy.delay(4, lambda: 0.5), 16.0)

    def test_no_jitter(self) -> None:
        policy = BackoffPolicy(initial=0.5, factor=3, maximum=10, jitter=0)
        self.assertEqual([policy.delay(n) for n in range(4)], [0.5, 1.5, 4.5, 10])

    def test_negative_attempt_is_an_error(self) -> None:
        self.assertRaises(ValueError, LOGIN_BACKOFF.base_delay, -1)
