"""The bundled LSTM language-model example (benchmarks/lstm_language_model.py) trains: after
three epochs its validation perplexity is well below the unigram model's.  Its speed and the
stated target are the benchmark's business, not a test's."""

from __future__ import annotations

import importlib.util
import pathlib

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "lstm_language_model.py"


def test_the_character_lstm_learns_more_than_letter_frequencies():
    spec = importlib.util.spec_from_file_location("lstm_language_model", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    perplexity, _, vocab, unigram = module.train(epochs=3, verbose=0)
    assert vocab == 46 and 19 < unigram < 21
    assert perplexity < 0.7 * unigram
