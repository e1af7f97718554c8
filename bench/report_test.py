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


if __name__ == "__main__":
    unittest.main()
