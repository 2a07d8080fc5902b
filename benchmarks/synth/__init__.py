"""Compact synthetic support sets on Fashion-MNIST (``python -m benchmarks.synth.synth_harness``)."""
