"""normalize_latex on real CROHME truths (with their published v1/v2 captions) and on bad input."""
from pathlib import Path

import pytest

from data_prep.latex import V1, V2, LatexError, LatexStyle, check_tokens, normalize_latex, tokenize

# (source, raw InkML truth, published caption): one or more real cases per collection.
V1_CASES = [
    ("HAMEX", r"$\phi(x)$", r"\phi ( x )"),
    ("HAMEX", r"$\log_a b = \frac{\log_c b}{\log_c a}$",
     r"\log _ { a } b = \frac { \log _ { c } b } { \log _ { c } a }"),
    ("HAMEX", r"$1 - 1 + 1 - 1 + \ldots$", r"1 - 1 + 1 - 1 + \ldots"),
    ("HAMEX", r"$a_{tan} = r\alpha$", r"a _ { t a n } = r \alpha"),
    ("KAIST", r"A = \sqrt {a + \frac 1 {\sqrt {a + \frac 1 {\sqrt a}}}} + \sqrt b",
     r"A = \sqrt { a + \frac { 1 } { \sqrt { a + \frac { 1 } { \sqrt { a } } } } } + \sqrt { b }"),
    ("KAIST", r"\pi \int_c^d \{ g ( y ) \}^2 d y", r"\pi \int _ { c } ^ { d } \{ g ( y ) \} ^ { 2 } d y"),
    ("KAIST", r"x^{2} + y^{2} \lt 1", r"x ^ { 2 } + y ^ { 2 } < 1"),
    ("MathBrush", r"{{\mbox{M}-\gamma}\neq{\mbox{b}-p}}", r"M - \gamma \neq b - p"),
    ("MathBrush", r"e_ { f_ { g_h } }", r"e _ { f _ { g _ { h } } }"),
    ("MathBrush", r"{ \mbox { j } \lt \lambda \left ( n \right ) }", r"j < \lambda ( n )"),
    ("MathBrush", r"{ - { 1 7 } }", r"- 1 7"),
    ("MfrDB", r"$c \cdot {( \sqrt[3]{2} )^{2}} + b \cdot ( \sqrt[3]{2} ) + a = 0$",
     r"c \cdot ( \sqrt [ 3 ] { 2 } ) ^ { 2 } + b \cdot ( \sqrt [ 3 ] { 2 } ) + a = 0"),
    ("MfrDB", r"$\int\limits_{a}^{b} f ( x ) dx$", r"\int \limits _ { a } ^ { b } f ( x ) d x"),
    ("MfrDB", r"$f^{'} ( x ) = \frac{1}{2 \sqrt{x}}$", r"f ^ { ' } ( x ) = \frac { 1 } { 2 \sqrt { x } }"),
    ("MfrDB", r"$2 l o g ( x - 3 ) = l o g ( 5 - x )$", r"2 \log ( x - 3 ) = \log ( 5 - x )"),
    ("MfrDB", r"$\sqrt[n]{\frac{n + 1}{{( n - 1 )^{2}}}}$",
     r"\sqrt [ n ] { \frac { n + 1 } { ( n - 1 ) ^ { 2 } } }"),
    ("expressmatch", r"$\frac{1}{\frac{1}{2}\Big( \frac{1}{a} + \frac{1}{b}\Big)} = \frac{2ab}{a+b}$",
     r"\frac { 1 } { \frac { 1 } { 2 } ( \frac { 1 } { a } + \frac { 1 } { b } ) } = \frac { 2 a b } { a + b }"),
    ("expressmatch", r"$A_{2k} = \frac{2RA_k}{2R + \sqrt{4R^2 + A^2_k}}$",
     r"A _ { 2 k } = \frac { 2 R A _ { k } } { 2 R + \sqrt { 4 R ^ { 2 } + A ^ { 2 } _ { k } } }"),
    ("expressmatch", r"$x^\prime = x \cos \theta + y \sin \theta$",
     r"x ^ { \prime } = x \cos \theta + y \sin \theta"),
    ("expressmatch", r"$S = \Bigg( \sum_{i=1}^{n} \theta_i - (n-2)\pi \Bigg)r^2$",
     r"S = ( \sum _ { i = 1 } ^ { n } \theta _ { i } - ( n - 2 ) \pi ) r ^ { 2 }"),
    ("extension", r"$M\ltN$", r"M < N"),
    ("extension", r"$\exists M, R \gt0$", r"\exists M , R > 0"),
    ("extension", r"$T^{\mu}_{\mu}$", r"T ^ { \mu } _ { \mu }"),
    ("2014", r"$1011\ 1110\ 1110\ 0101_2$", r"1 0 1 1 1 1 1 0 1 1 1 0 0 1 0 1 _ { 2 }"),
    ("2014", r"$\frac{pe^t}{1-(1-p) e^t}\!$", r"\frac { p e ^ { t } } { 1 - ( 1 - p ) e ^ { t } }"),
    ("2014", r"$ \sqrt {648 + 648} ABOVE {4} + 8 $", r"\sqrt [ 4 ] { 6 4 8 + 6 4 8 } + 8"),
    ("2014", r"$ 1 + x + x ^ {2}, x + x ^ {2} _ {}, x ^ {2} $", r"1 + x + x ^ { 2 } , x + x ^ { 2 } , x ^ { 2 }"),
]

# CROHME 2013 (our validation set) has no published captions: expected forms follow v1.
CASES_2013 = [
    (r"$E_1, \ldots, E_k$", r"E _ { 1 } , \ldots , E _ { k }"),
    (r"$ lim _ {x \rightarrow 3} x ^ {2} = 9 $", r"\lim _ { x \rightarrow 3 } x ^ { 2 } = 9"),
    (r"$ \sin \lbrack a + b \rbrack = \sin a \cos b + \cos a \sin b $",
     r"\sin [ a + b ] = \sin a \cos b + \cos a \sin b"),
    (r"$ \frac {- 1} {sin ^ {2} x} $", r"\frac { - 1 } { \sin ^ { 2 } x }"),
]

V2_CASES = [
    (r"$ \sum \limits ^ {n} _ {i = 1} \lbrack i ^ {k + 1} - (i - 1) ^ {k + 1} \rbrack = n ^ {k + 1} $",
     r"\sum \limits _ { i = 1 } ^ { n } [ i ^ { k + 1 } - ( i - 1 ) ^ { k + 1 } ] = n ^ { k + 1 }"),
    (r"$\lim_{z \rightarrow z_0} f(z) = k$", r"\lim \limits _ { z \rightarrow z _ { 0 } } f ( z ) = k"),
    (r"$ m ^ {'} + N = \lbrack m ^ {'} \rbrack $", r"m ^ { \prime } + N = [ m ^ { \prime } ]"),
]


@pytest.mark.parametrize("source, raw, caption", V1_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(V1_CASES)])
def test_real_truths_match_their_v1_caption(source, raw, caption):
    assert normalize_latex(raw) == caption.split()


@pytest.mark.parametrize("raw, expected", CASES_2013)
def test_2013_truths(raw, expected):
    assert normalize_latex(raw) == expected.split()


@pytest.mark.parametrize("raw, caption", V2_CASES)
def test_v2_style_matches_the_v2_captions(raw, caption):
    assert normalize_latex(raw, V2) == caption.split()


@pytest.mark.parametrize("raw, expected", [
    (r"\frac12", r"\frac { 1 } { 2 }"),
    (r"\frac 1 2", r"\frac { 1 } { 2 }"),
    (r"\frac\pi{2h}", r"\frac { \pi } { 2 h }"),
    (r"\sqrt x", r"\sqrt { x }"),
    (r"\sqrt[3]{2}", r"\sqrt [ 3 ] { 2 }"),
    (r"x^2", r"x ^ { 2 }"),
    (r"x^23", r"x ^ { 2 } 3"),
    (r"{{a}}", r"a"),
    (r"\left.x\right|", r"x |"),
    (r"a\,b\;c\!d\ e\quad f", r"a b c d e f"),
    (r"\mathrm{sin}\,x", r"\sin x"),
    (r"x \to \infty", r"x \rightarrow \infty"),
    (r"a \le b \ge c \ne d", r"a \leq b \geq c \neq d"),
    (r"| x \parallel y |", r"| x | | y |"),
    (r"\dfrac{a}{b}", r"\frac { a } { b }"),
])
def test_constructs(raw, expected):
    assert normalize_latex(raw) == expected.split()


def test_styles_differ_only_where_latex_leaves_a_choice():
    raw = r"\sum_{i}^{n} x^{2}_{i} + \int\limits^1_0 f' + \lim x"
    assert " ".join(normalize_latex(raw, V1)) == r"\sum _ { i } ^ { n } x ^ { 2 } _ { i } + \int \limits ^ { 1 } _ { 0 } f ' + \lim x"
    assert " ".join(normalize_latex(raw, V2)) == (
        r"\sum \limits _ { i } ^ { n } x _ { i } ^ { 2 } + \int \limits _ { 0 } ^ { 1 } f \prime + \lim x")
    no_limits = LatexStyle(limits="never")
    assert "\\limits" not in normalize_latex(raw, no_limits)


def test_tokenize_splits_letters_and_digits_but_keeps_commands():
    assert tokenize(r"$\alpha12ab\{$") == ["\\alpha", "1", "2", "a", "b", "\\{"]
    assert tokenize(r"\gtM") == ["\\gt", "M"]


@pytest.mark.parametrize("raw, problem", [
    (r"\frac{1}", "missing an argument"),
    (r"x^", "missing an argument"),
    (r"{a", "closing brace is missing"),
    (r"a}}", "unbalanced '}'"),
    (r"\sqrt[3", "closing ']'"),
    (r"\sqrt{}", "empty argument"),
    (r"\Pi", r"outside the vocabulary: \\Pi"),
    (r"x ABOVE {2}", "not after a square root"),
    ("$ $", "empty expression"),
])
def test_bad_input_raises_latex_error_naming_the_problem(raw, problem):
    with pytest.raises(LatexError, match=problem):
        normalize_latex(raw)


def test_latex_error_is_a_value_error():
    assert issubclass(LatexError, ValueError)


def test_check_tokens():
    check_tokens(["x", "^", "{", "2", "}"])
    with pytest.raises(LatexError, match="outside the vocabulary: foo"):
        check_tokens(["x", "foo"])


DATA = Path(__file__).parents[2] / "shared" / "data"


def test_agreement_with_v1_on_train_and_2014_is_at_least_98_5_percent():
    """The hard requirement, on all 9,821 train + 2014 expressions (a few seconds)."""
    if not (DATA / "crohme").is_dir():
        pytest.skip(f"full CROHME data not found at {DATA}")
    from data_prep.captions import compare_split, read_truths
    from data_prep.layout import read_captions

    compared = identical = 0
    for collection in ("train", "2014"):
        captions = read_captions(DATA / "crohme_offline" / collection / "caption.txt")
        figures, _ = compare_split(read_truths(DATA / "crohme", collection), captions, V1)
        compared += figures["compared"]
        identical += figures["identical"]
    assert compared == 9821
    assert identical / compared >= 0.985
