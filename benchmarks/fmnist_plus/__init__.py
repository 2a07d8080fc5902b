"""Fashion-MNIST+: DR vs ERM vs online KD across architectures (``python -m benchmarks.fmnist_plus.fmnist_harness``)."""
