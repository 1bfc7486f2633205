"""Learning-to-rank as served: features, the GBDT+LR model, re-ranking.

* :mod:`engine.ltr.features` — the versioned feature list and pure extraction;
* :mod:`engine.ltr.model` — GBDT leaves -> one-hot -> logistic regression, saved as JSON;
* :mod:`engine.ltr.rerank` — ``rerank(candidates, ...)`` for the search service.

Offline, under :mod:`engine.train`: SIMULATED queries and click logs
(:mod:`engine.train.datagen.clicks`), training data (:mod:`engine.train.ltr_data`), fitting the
model (:mod:`engine.train.ltr_model`, ``python -m engine.train.ltr``) and the optional OpenSearch
LTR plugin featureset/model JSON (:mod:`engine.train.ltr_export`).
"""
