"""Tests of the robustness audit, its storage, scale-out, report, command line and demo."""
