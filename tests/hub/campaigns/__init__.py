"""Tests of campaigns, coupons, points and analytics."""
