"""agent.namemangler must give exactly what the branch-api plugin's NameMangler.apply gives."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.jenkins.namemangler import MAX_SAFE_LENGTH, mangle

# Every assertion of NameManglerTest, expected outputs copied verbatim, in the order they appear
# ("foo/bar" is asserted twice there, so it is here), from
# https://github.com/jenkinsci/branch-api-plugin src/test/java/jenkins/branch/NameManglerTest.java
# at commit e73a56d397882c63ae06483ba81742c2e39d25d5.
# Copyright (c) 2017, CloudBees, Inc.; MIT licence.
JAVA_TEST_VECTORS = [
    # safeNames()
    ("foo", "foo"),
    ("foo-bar", "foo-bar"),
    ("foo bar", "foo-bar.074vf0"),
    ("foo/bar", "foo-bar.nj9av9"),
    ("foo\\bar", "foo-bar.730n59"),
    # reservedNames()
    (".", "0-.tkvgu3"),
    ("..", "0--.mpdh40"),
    ("con", "con.lkb1gc"),
    ("prn", "prn.n7ievs"),
    ("aux", "aux.75carl"),
    ("nul", "nul.3r8i6h"),
    ("com1", "com1.k0564q"),
    ("com2", "com2.ni698t"),
    ("com3", "com3.8ad2lm"),
    ("com4", "com4.j2s67g"),
    ("com5", "com5.8fdiog"),
    ("com6", "com6.v0rf0v"),
    ("com7", "com7.v5tsfp"),
    ("com8", "com8.o02opt"),
    ("com9", "com9.3bmuo4"),
    ("lpt1", "lpt1.cstki2"),
    ("lpt2", "lpt2.136d1i"),
    ("lpt3", "lpt3.cvdm8e"),
    ("lpt4", "lpt4.upc9bu"),
    ("lpt5", "lpt5.u2mmru"),
    ("lpt6", "lpt6.n50rnj"),
    ("lpt7", "lpt7.9eh7vi"),
    ("lpt8", "lpt8.gm9r02"),
    ("lpt9", "lpt9.55srnr"),
    # slashNames()
    ("foo/bar", "foo-bar.nj9av9"),
    ("foo/bar/fu manchu", "foo-bar-fu-manchu.k630nd"),
    ("foo/bar/fu manchu/1", "foo-bar-fu-manchu-1.vgnr4j"),
    ("foo/bar/fu manchu/12", "foo-bar-fu-manchu-12.6urklv"),
    ("foo/bar/fu manchu/123", "foo-bar-fu-manchu-123.nap1h9"),
    ("foo/bar/fu manchu/1234", "foo-bar-fu-manchu-1234.kstl5e"),
    ("foo/bar/fu manchu/12345", "foo-bar-fu-manchu-12345.i2apnp"),
    ("foo/bar/fu manchu/123456", "foo-bar-fu-manchu-123456.8vabkm"),
    ("foo/bar/fu manchu/1234567", "foo-bar-fu-manchu-1234567.5h1u4c"),
    ("foo/bar/fu manchu/12345678", "foo-bar-fu-m.vrohpg.chu-12345678"),
    ("foo/bar/fu manchu/123456789", "foo-bar-fu-m.403j04.hu-123456789"),
    ("foo/bar/fu manchu/1234567890", "foo-bar-fu-m.jrvb2f.u-1234567890"),
    ("foo/bar/fu manchu/1234567890a", "foo-bar-fu-m.1dcfvj.-1234567890a"),
    ("foo/bar/fu manchu/1234567890ab", "foo-bar-fu-m.mdl920.1234567890ab"),
    ("foo/bar/fu manchu/1234567890abc", "foo-bar-fu-m.aql4gn.234567890abc"),
    ("foo/bar/fu manchu/1234567890abce", "foo-bar-fu-m.bt3j2r.34567890abce"),
    ("foo/bar/fu manchu/1234567890abcef", "foo-bar-fu-m.jjum74.4567890abcef"),
    ("foo/bar/fu manchu/1234567890abcefg", "foo-bar-fu-m.vddees.567890abcefg"),
    # longNames()
    ("cafebabedeadbeefcafebabedeadbeef", "cafebabedeadbeefcafebabedeadbeef"),
    ("cafebabedeadbeefcafebabedeadbeefcafebabedeadbeef", "cafebabed.98h82o58mhfo.edeadbeef"),
    ("cafebabedeadbeefcafebabeDeadbeefcafebabedeadbeef", "cafebabed.a67pve49oi0n.edeadbeef"),
    ("cafebabedeadbeefcafebabedeadbeef1", "cafebabedead.dfcoms.abedeadbeef1"),
    ("cafebabedeadbeefcafebabedeadbeef2", "cafebabedead.m0u50r.abedeadbeef2"),
    # nonSafeNames()
    ("Is maith liom criospaí", "Is-maith-liom-criospa_ed.0g5uh9"),
    ("Ich liebe Fußball", "Ich-liebe-Fu_dfball.fp53tq"),
    ("我喜欢披萨", "0_62_11_55_9.f9c1g4._62_ab_84_28"),
    ("特征/新", "0_72_79_5f_81-_65_b0.nt1m48"),
    ("특색/새로운", "0_d2_b9_c0_c.ps50ht._b8_5c_c6_b4"),
    ("gné/nua", "gn_e9-nua.updi5h"),
    ("característica/nuevo", "caracter_edstica-nuevo.h5da9f"),
    ("особенность/новый", "0_04_3e_0.n168ksdsksof._4b_04_39"),
    # spain()
    ("Espana", "Espana"),
    ("España", "Espa_f1a.9jabqu"),
    ("Espa\u006e\u0303a", "Espan_03_03a.eqqe01"),
    # ireland()
    ("Eireann", "Eireann"),
    ("Éireann", "0_c9ireann.giuvlt"),
    ("E\u0301ireann", "E_03_01ireann.0qtq11"),
]

# Not in NameManglerTest: outputs of NameMangler.apply itself (the Java class at the commit
# above, compiled and run on OpenJDK 17 with commons-lang3 3.18.0), for cases a caller meets
# or that the Java tests leave out.
JAVA_RUN_VECTORS = [
    ("feature/login", "feature-login.lgkpmn"),
    ("release/1.0", "release-1-0.4err8m"),
    ("PR-123", "PR-123"),
    ("", ""),  # the empty name is kept
    ("-foo", "-foo.lvkfkl"),  # mangled, yet still starts with '-'
    ("CON", "CON.tcnopc"),  # reserved names match case-insensitively
    ("trailing.", "trailing-.lq60qh"),
    ("a" * 33, "aaaaaaaaaaaa.e0df4l.aaaaaaaaaaaa"),
    # 27 characters mangle to 27, more than 25 leave room for: the middle is overwritten.
    ("a" * 26 + "/", "aaaaaaaaaaaa.315bta.aaaaaaaaaaa-"),
    # Outside the BMP: one UTF-16 code unit after the other, each high byte first.
    ("\U0001f600", "0_d8_3d_de_00.659amf"),
    ("\ud83d\ude00", "0_d8_3d_de_00.659amf"),  # the same Java string
    # Lone surrogates: mangled as code units, hashed as '?' (String.getBytes(UTF_8)).
    ("\ud83d", "0_d8_3d.c9cvjt"),
    ("x\ude00", "x_de_00.hapboa"),
]

SAFE_OUTPUT = re.compile(r"[A-Za-z0-9._-]*")
KEPT = re.compile(r"(?!-)[A-Za-z0-9-]{0,32}")
RESERVED = {"con", "prn", "aux", "nul"} | {f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10)}

names = st.one_of(
    st.text(alphabet="abcXYZ09-", max_size=40),
    st.text(alphabet="abZ9-/\\ ._é中\U0001f600", max_size=60),
    st.sampled_from(sorted(RESERVED)).map(lambda r: r.upper() if len(r) % 2 else r),
    # Any code point, lone surrogates included.
    st.text(st.characters(codec=None, exclude_categories=()), max_size=80),
)


@pytest.mark.parametrize(("name", "expected"), JAVA_TEST_VECTORS)
def test_java_test_vectors(name: str, expected: str) -> None:
    assert mangle(name) == expected


@pytest.mark.parametrize(("name", "expected"), JAVA_RUN_VECTORS)
def test_java_run_vectors(name: str, expected: str) -> None:
    assert mangle(name) == expected


@given(names)
def test_output_is_short_and_safe(name: str) -> None:
    out = mangle(name)
    assert len(out) <= MAX_SAFE_LENGTH
    assert SAFE_OUTPUT.fullmatch(out)
    assert out.lower() not in RESERVED
    assert not out.startswith(".")
    assert not out.endswith(".")


@given(names)
def test_kept_exactly_when_safe_short_and_not_reserved(name: str) -> None:
    kept = bool(KEPT.fullmatch(name)) and name.lower() not in RESERVED
    assert (mangle(name) == name) == kept


@given(names)
def test_mangled_names_never_look_kept(name: str) -> None:
    """Every mangled name has a '.', which no kept name has, so the two never collide."""
    out = mangle(name)
    if out != name:
        assert "." in out
        assert not KEPT.fullmatch(out)


@given(names)
def test_only_kept_names_are_fixed_points(name: str) -> None:
    """Not idempotent: mangling a mangled name mangles it again (its '.' is not safe)."""
    out = mangle(name)
    assert (mangle(out) == out) == (out == name)


@given(names)
def test_hash_part_is_inserted_not_appended_past_25_characters(name: str) -> None:
    out = mangle(name)
    if out != name:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,25}\.[0-9a-v]{6}", out) or (
            len(out) == MAX_SAFE_LENGTH
            and re.fullmatch(r"[A-Za-z0-9_-]+\.[0-9a-v]{6,12}\.[A-Za-z0-9_-]+", out)
        )
