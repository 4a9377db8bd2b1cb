"""pytest hooks of pytest-axiomperf (work in progress)."""

from __future__ import annotations
