"""Foundations of sid4ds, private: one RNG policy, every input check, devices and
precisions, and the plain values an estimator's state is made of. They import nothing of
sid4ds."""
