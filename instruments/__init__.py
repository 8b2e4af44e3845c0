"""Instrument training corpora (development tools: need FluidSynth; see render.py)."""
