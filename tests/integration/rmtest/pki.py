"""Certificates for the TLS tests, made by openssl for the run: a CA, a server certificate
for localhost/127.0.0.1, a client certificate from the same CA, and a client certificate
from a second CA the server does not trust."""
import os
import subprocess


def _openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def _issue(d, name, ca=None, extensions=()):
    """name.key / name.pem: an EC P-256 certificate, self-signed when ca is None."""
    args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + name]
    if ca:
        args += ["-CA", ca + ".pem", "-CAkey", ca + ".key"]
    for ext in extensions:
        args += ["-addext", ext]
    _openssl(d, *args)


def make_pki(d):
    """Writes ca, otherca, server (signed by ca), dual (ca; server and client use), client (ca)
    and intruder (otherca) as
    NAME.pem / NAME.key in directory d; returns NAME -> path."""
    d = str(d)
    _issue(d, "ca")
    _issue(d, "otherca")
    _issue(d, "server", "ca", ["subjectAltName=DNS:localhost,IP:127.0.0.1",
                               "basicConstraints=critical,CA:FALSE",
                               "extendedKeyUsage=serverAuth"])
    # a server certificate that the same CA also accepts from a client (mutual TLS in a mesh)
    _issue(d, "dual", "ca", ["subjectAltName=DNS:localhost,IP:127.0.0.1",
                             "basicConstraints=critical,CA:FALSE",
                             "extendedKeyUsage=serverAuth,clientAuth"])
    for name, ca in (("client", "ca"), ("intruder", "otherca")):
        _issue(d, name, ca, ["basicConstraints=critical,CA:FALSE", "extendedKeyUsage=clientAuth"])
    return lambda name: os.path.join(d, name)
