"""Unit tests of bench/report.py's formatting (run by ctest as bench_report_test)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402


class FmtVsTest(unittest.TestCase):
    def test_a_value_just_below_its_goal_does_not_read_as_the_goal(self):
        # Run 9's C1: 67397.0 / 74896.0 printed as 0.90 next to MISS.
        self.assertEqual(report.fmt_vs(67397.0 / 74896.0, 0.90), "0.8999")
        self.assertEqual(report.fmt_vs(0.8499, 0.85), "0.8499")
        self.assertEqual(report.fmt_vs(1.5004, 1.5), "1.5004")

    def test_digits_grow_only_as_far_as_needed(self):
        self.assertEqual(report.fmt_vs(0.853, 0.85), "0.853")
        self.assertEqual(report.fmt_vs(0.84999, 0.85), "0.8500")  # at most 4 digits
        self.assertEqual(report.fmt_vs(0.85, 0.85), "0.85")
        self.assertEqual(report.fmt_vs(0.96, 0.90), "0.96")
        self.assertEqual(report.fmt_vs(0.3449, 0.35, 3), "0.345")

    def test_missing_value(self):
        self.assertEqual(report.fmt_vs(None, 0.9), "-")


def level(protocol, rnd, concurrency, throughput, p50=1.0):
    return {"protocol": protocol, "round": rnd, "mode": "concurrency", "level": concurrency,
            "throughput": throughput, "latency_ms": {"p50": p50}}


class RoundsTest(unittest.TestCase):
    # v1 and v2 at c=16 in three rounds while the machine's speed drifts:
    # v2/v1 is 0.5, 0.9 and 1.0 within the rounds.
    RUN = {"levels": [level("v1", 1, 16, 20000), level("v2", 1, 16, 10000),
                      level("v1", 2, 16, 10000), level("v2", 2, 16, 9000),
                      level("v1", 3, 16, 19000), level("v2", 3, 16, 19000)]}

    def test_ratios_are_taken_within_each_round_and_their_median_kept(self):
        def v2_over_v1(run):
            a = report.protocol_level(run, "v2", "concurrency", 16)
            b = report.protocol_level(run, "v1", "concurrency", 16)
            return report.ratio(a["throughput"], b["throughput"])

        value, values = report.per_round(self.RUN, v2_over_v1)
        self.assertEqual(values, [0.5, 0.9, 1.0])
        self.assertEqual(value, 0.9)

    def test_a_run_without_rounds_is_one_round(self):
        run = {"levels": [{k: v for k, v in l.items() if k != "round"} for l in self.RUN["levels"][:2]]}
        value, values = report.per_round(run, lambda r: len(r["levels"]))
        self.assertEqual((value, values), (2, [2]))

    def test_round_missing_a_value_is_left_out_of_the_median(self):
        value, values = report.per_round(self.RUN, lambda r: None if r["levels"][0]["round"] == 2 else 1.0)
        self.assertEqual(values, [1.0, None, 1.0])
        self.assertEqual(value, 1.0)
        self.assertIsNone(report.per_round(self.RUN, lambda r: None)[0])

    def test_protocol_level_finds_the_level_of_the_asked_round(self):
        self.assertEqual(report.protocol_level(self.RUN, "v2", "concurrency", 16, 3)["throughput"], 19000)
        self.assertEqual(report.protocol_level(self.RUN, "v2", "concurrency", 16)["throughput"], 10000)

    def test_value_text(self):
        self.assertEqual(report.value_text("9.0 / 10.0", [0.9], 0.9, 0.95), "9.0 / 10.0 = 0.90")
        self.assertEqual(report.value_text("-", [0.5, 0.9, 1.0], 0.9, 0.95, 3),
                         "median of 3 rounds (0.500, 0.900, 1.000) = 0.900")
        self.assertEqual(report.value_text("a - b", [0.01, 0.03], 0.02, 0.05, 3, " ms"),
                         "median of 2 rounds (0.010, 0.030) = 0.020 ms")

    def test_median(self):
        self.assertEqual(report.median([3, 1, 2]), 2)
        self.assertEqual(report.median([4, 1, 2, 3]), 2.5)
        self.assertIsNone(report.median([]))


if __name__ == "__main__":
    unittest.main()
