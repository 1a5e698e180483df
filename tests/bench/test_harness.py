"""What the benchmarks record about the machine they ran on."""

from __future__ import annotations

from bench._harness import _cpu_name

TWO_CPUS = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: Another name
"""


def test_the_cpu_is_named_with_its_family_and_model() -> None:
    # A virtual machine may name only the vendor's line: two generations of "AMD EPYC"
    # would read the same without the numbers.
    assert _cpu_name(TWO_CPUS) == "AMD EPYC (family 26 model 2)"


def test_the_cpu_is_named_as_given_where_the_numbers_are_missing() -> None:
    assert _cpu_name("processor\t: 0\nmodel name\t: Some CPU\n") == "Some CPU"
    assert _cpu_name("processor\t: 0\nfeatures\t: fp asimd\n") is None
