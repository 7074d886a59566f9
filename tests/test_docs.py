# SPDX-License-Identifier: MIT
"""README, --help and the man page tell the same truth."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, run_ingestfs


def help_options():
    out = run_ingestfs(["--help"]).stdout.decode()
    opts = set(re.findall(r"-o ([a-z_]+)=", out))
    flags = set(re.findall(r"^\s+(-[a-zA-Z]|--[a-z]+)\b", out, re.M))
    flags |= {"-o " + f for f in re.findall(r"^\s+-o ([a-z_]+)\s", out, re.M)}
    return out, opts, flags


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def test_help_lists_the_documented_options():
    _, opts, flags = help_options()
    assert {"api_url", "ttl", "timeout", "credentials", "endpoint", "max_response",
            "max_idle_threads"} <= opts
    assert {"-h", "-V", "-f", "-d", "-s", "-o insecure_http"} <= flags


def test_every_help_option_is_in_man_page_and_readme():
    _, opts, flags = help_options()
    man = read("man/ingestfs.1").replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
    readme = read("README.md")
    for o in opts:
        assert re.search(r"\b%s=" % o, man), "man page lacks -o %s" % o
        assert "-o %s=" % o in readme, "README lacks -o %s" % o
    for f in flags:
        assert f in man, "man page lacks %s" % f
        assert "`%s`" % f in readme, "README lacks %s" % f


def test_defaults_agree():
    out, _, _ = help_options()
    man = read("man/ingestfs.1").replace("\\-", "-")
    readme = read("README.md")
    for opt, default in [("ttl", "30"), ("timeout", "10"), ("max_response", "256M"),
                         ("max_idle_threads", "10")]:
        assert re.search(r"%s=\S+\s+.*default: %s\)" % (opt, default), out, re.S), opt
        assert re.search(r"`-o %s=[A-Z]+` \| `%s`" % (opt, default), readme), opt
    assert "Default: 30." in man and "Default: 10." in man and "Default: 256M." in man
    for text in (out, man, readme):
        assert "https://services.uplynk.com" in text
        assert "/api/v4/managed-slicer/ingest-points/tasks" in text


def test_man_page_is_clean():
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    r = subprocess.run(["groff", "-ww", "-man", "-z", os.path.join(ROOT, "man/ingestfs.1")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    man = read("man/ingestfs.1")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "ENVIRONMENT",
                    "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        assert re.search(r"^\.SH \"?%s\"?$" % section, man, re.M), section


def test_man_page_is_clean_under_mandoc():
    if not shutil.which("mandoc"):
        pytest.skip("mandoc is not installed")
    r = subprocess.run(["mandoc", "-Tlint", "-W", "warning", os.path.join(ROOT, "man/ingestfs.1")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def test_readme_has_the_two_setup_commands():
    readme = read("README.md")
    assert "scripts/demo.sh" in readme and "scripts/test.sh" in readme
    assert "scripts/test.sh" in read(".ci/run")


def test_debian_changelog_version_is_the_meson_version():
    """The package's version (native: no Debian revision) is the project's."""
    meson = re.search(r"version\s*:\s*'([^']+)'", read("meson.build")).group(1)
    first = read("debian/changelog").splitlines()[0]
    m = re.match(r"ingestfs \(([^)]+)\) ", first)
    assert m, first
    assert m.group(1) == meson, (m.group(1), meson)
    out = run_ingestfs(["--version"]).stdout.decode()
    assert out.split()[1] == meson, out
