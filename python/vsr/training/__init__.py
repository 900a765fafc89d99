"""Training and evaluating vsr's default classifiers (domain, jailbreak, PII).

Heads are small (linear or MLP) and sit on a shipped encoder; their features come from vsr's own
native core with the same pooling the serving bundle uses, so what is trained is what is served.
``tasks`` defines the per-task interface and registry that ``vsr train|classify|eval`` dispatch to.
Training needs scikit-learn (a dev dependency); loading and predicting do not.
"""
