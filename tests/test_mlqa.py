"""MLQA's language-specific answer normalisation and EM/F1 (facebookresearch/MLQA mlqa_evaluation_v1.py)."""

import pytest

from xfer import metrics
from xfer.errors import XferError
from xfer.mlqa import exact_match, f1, is_punctuation, mixed_segmentation, normalize_answer, scores


def test_english_articles_and_unicode_punctuation():
    assert normalize_answer("The Eiffel Tower!", "en") == "eiffel tower"
    # curly quotes are Unicode punctuation (Pi/Pf): MLQA drops them, SQuAD v1.1 keeps them
    assert normalize_answer("“Paris”", "en") == "paris"
    assert metrics.squad_normalize("“Paris”") == "“paris”"
    # ASCII punctuation includes symbols ($ is category Sc); other symbols stay
    assert is_punctuation("$") and not is_punctuation("€")
    assert normalize_answer("$5 or 5€", "en") == "5 or 5€"


def test_arabic_quirk_removes_every_al():
    # the official regex replaces every "ال", not only the article at the start of a word
    assert normalize_answer("الكتاب.", "ar") == "كتاب"
    assert normalize_answer("المال", "ar") == "م"           # ال + م + ال
    assert normalize_answer("مال", "ar") == "م"             # no article at all, still cut
    assert normalize_answer("كتاب، قلم؟", "ar") == "كتاب قلم"  # Arabic comma and question mark are P*
    assert exact_match("المال", "مال", "ar") == 1.0
    assert exact_match("الكتاب", "كتاب", "en") == 0.0       # only Arabic gets the rule
    # "الكتاب الجديد" -> [كتاب, جديد] vs [كتاب]: P 1/2, R 1 -> 2/3
    assert f1("الكتاب الجديد", "كتاب", "ar") == pytest.approx(2 / 3)


def test_german_articles_and_quotes():
    assert normalize_answer("Der Hund, die Katze.", "de") == "hund katze"
    assert normalize_answer("„Haus“", "de") == "haus"
    # whole words only: "dieser" keeps its "die", "desto" its "des"
    assert normalize_answer("Dieser Ort der Stadt desto", "de") == "dieser ort stadt desto"
    # [hund, katze] vs [hund, und, katze]: P 1, R 2/3 -> 0.8
    assert f1("Der Hund, die Katze.", "Hund und Katze", "de") == pytest.approx(0.8)
    assert exact_match("der Hund", "Hund", "de") == 1.0 and exact_match("der Hund", "Hund", "en") == 0.0


def test_spanish_articles_and_inverted_marks():
    assert normalize_answer("¿El río de la Plata?", "es") == "río de plata"
    assert exact_match("Río de la Plata", "el río de las plata", "es") == 1.0
    # [andes] vs [cordillera, de, andes]: P 1, R 1/3 -> 0.5
    assert f1("los Andes", "Cordillera de los Andes", "es") == pytest.approx(0.5)


def test_vietnamese_function_words():
    assert normalize_answer("Những cái bàn là của tôi", "vi") == "bàn tôi"
    assert normalize_answer("Thủ đô của Việt Nam", "vi") == "thủ đô việt nam"
    assert normalize_answer("làm việc", "vi") == "làm việc"  # "là" inside "làm" stays
    # [hà, nội] vs [thành, phố, hà, nội]: P 1, R 1/2 -> 2/3
    assert f1("Hà Nội", "thành phố Hà Nội", "vi") == pytest.approx(2 / 3)


def test_chinese_mixed_segmentation():
    assert mixed_segmentation("2008年北京 iPhone") == ["2008", "年", "北", "京", "iPhone"]
    assert mixed_segmentation("a,b") == ["a", ",", "b"]
    assert normalize_answer("北京大学。", "zh") == "北 京 大 学"
    assert normalize_answer("the 书", "zh") == "the 书"  # no articles in Chinese
    # [北, 京] vs [北, 京, 大, 学]: P 1, R 1/2 -> 2/3
    assert f1("北京", "北京大学", "zh") == pytest.approx(2 / 3)
    # [2008, 年] vs [2008, 年, 北, 京, 奥, 运, 会]: P 1, R 2/7 -> 4/9
    assert f1("2008年", "2008年北京奥运会", "zh") == pytest.approx(4 / 9)
    # whitespace tokenisation would see one token each and score 0
    assert f1("北京", "北京大学", "en") == 0.0


def test_hindi_keeps_words_drops_danda():
    assert normalize_answer("भारत की राजधानी।", "hi") == "भारत की राजधानी"
    assert normalize_answer("a book", "hi") == "a book"
    # [नई, दिल्ली] vs [दिल्ली]: P 1/2, R 1 -> 2/3
    assert f1("नई दिल्ली", "दिल्ली।", "hi") == pytest.approx(2 / 3)


def test_scores_max_over_golds_and_unanswered():
    references = {"q1": ["Katze", "Hund"], "q2": ["die Katze"], "q3": ["Baum"]}
    predictions = {"q1": "der Hund", "q2": "Hund und Katze", "other": "ignored"}
    # q1 EM 1 F1 1 (second gold); q2 [hund, und, katze] vs [katze]: EM 0, F1 0.5; q3 unanswered: 0
    out = scores(predictions, references, "de")
    assert out["exact_match"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(50.0)


def test_errors():
    with pytest.raises(XferError, match="unknown answer language 'fr'"):
        scores({"q": "x"}, {"q": ["x"]}, "fr")
    with pytest.raises(XferError, match="no questions"):
        scores({}, {}, "en")
    with pytest.raises(XferError, match="question 'q' has no gold answer"):
        scores({"q": "x"}, {"q": []}, "en")
