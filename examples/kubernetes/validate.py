#!/usr/bin/env python3
"""Validates the manifests of examples/kubernetes offline.

- Kubernetes' own kinds against the OpenAPI schemas of a pinned Kubernetes release, strictly
  (unknown fields are errors), with the `kubernetes-validate` package.
- cert-manager's Issuer and Certificate against a schema written here for the fields of
  cert-manager.io/v1 this example uses (kubernetes-validate has no CRD schemas).
- The references between them: every ConfigMap/Secret a pod mounts exists (or is made by a
  Certificate), every key a file path in mosquitto.conf or mqttguard.toml
  names is in the volume mounted there, Service selectors and target ports match the pods.

  validate.py [--extract DIR] [--self-test] [FILE ...]

--extract writes the mounted files as each pod sees them (DIR/mosquitto/config/...,
DIR/mosquitto/auth/...) so that scripts/image.sh can lint them and run the broker on them in
the image. --self-test checks that broken manifests are refused.
"""

import argparse
import copy
import glob
import os
import re
import sys

import kubernetes_validate
import jsonschema
import yaml

KUBERNETES_VERSION = "1.32.0"
HERE = os.path.dirname(os.path.abspath(__file__))

_ISSUER_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                   "group": {"type": "string"}},
}
_PRIVATE_KEY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
        "size": {"type": "integer"},
        "encoding": {"enum": ["PKCS1", "PKCS8"]},
        "rotationPolicy": {"enum": ["Never", "Always"]},
    },
}
_USAGES = ["signing", "digital signature", "content commitment", "key encipherment",
           "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
           "decipher only", "any", "server auth", "client auth", "code signing",
           "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
           "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"]
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                   "namespace": {"type": "string"},
                   "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                   "annotations": {"type": "object",
                                   "additionalProperties": {"type": "string"}}},
}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$"}
CERT_MANAGER_SCHEMAS = {
    "Certificate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": {"const": "Certificate"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["secretName", "issuerRef"],
                "properties": {
                    "secretName": {"type": "string"},
                    "issuerRef": _ISSUER_REF,
                    "commonName": {"type": "string", "maxLength": 64},
                    "dnsNames": {"type": "array", "items": {"type": "string"}},
                    "ipAddresses": {"type": "array", "items": {"type": "string"}},
                    "uris": {"type": "array", "items": {"type": "string"}},
                    "emailAddresses": {"type": "array", "items": {"type": "string"}},
                    "duration": _DURATION,
                    "renewBefore": _DURATION,
                    "isCA": {"type": "boolean"},
                    "usages": {"type": "array", "items": {"enum": _USAGES}},
                    "privateKey": _PRIVATE_KEY,
                    "revisionHistoryLimit": {"type": "integer"},
                },
                "anyOf": [{"required": ["commonName"]}, {"required": ["dnsNames"]},
                          {"required": ["ipAddresses"]}, {"required": ["uris"]},
                          {"required": ["emailAddresses"]}],
            },
        },
    },
    "Issuer": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": {"const": "Issuer"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "ca": {"type": "object", "additionalProperties": False,
                           "required": ["secretName"],
                           "properties": {"secretName": {"type": "string"}}},
                    "selfSigned": {"type": "object"},
                },
                "minProperties": 1,
                "maxProperties": 1,
            },
        },
    },
}


class Invalid(Exception):
    pass


def load(files):
    docs = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((os.path.basename(path), doc))
    return docs


def name(doc):
    return "%s/%s" % (doc.get("kind"), doc.get("metadata", {}).get("name"))


def check_schemas(docs):
    for path, doc in docs:
        where = "%s: %s" % (path, name(doc))
        if doc.get("apiVersion", "").startswith("cert-manager.io/"):
            schema = CERT_MANAGER_SCHEMAS.get(doc.get("kind"))
            if schema is None:
                raise Invalid("%s: no schema for this cert-manager kind" % where)
            try:
                jsonschema.validate(doc, schema)
            except jsonschema.ValidationError as e:
                raise Invalid("%s: %s (at %s)" % (where, e.message, "/".join(map(str, e.path))))
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.utils.ValidationError as e:
            raise Invalid("%s: %s (at %s)" % (where, e.message, "/".join(map(str, e.path))))
        except kubernetes_validate.utils.SchemaNotFoundError as e:
            raise Invalid("%s: %s" % (where, e.message))


def mounted_files(docs, pod):
    """{absolute path: (volume source description, content or None)} for one pod spec."""
    by_kind = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:
                raise Invalid("container %s mounts undefined volume %s"
                              % (container["name"], mount["name"]))
            if "configMap" in volume:
                cm = by_kind.get("ConfigMap", {}).get(volume["configMap"]["name"])
                if cm is None:
                    raise Invalid("volume %s: no ConfigMap %s"
                                  % (volume["name"], volume["configMap"]["name"]))
                items = {k: v for k, v in cm.get("data", {}).items()}
            elif "secret" in volume:
                secret_name = volume["secret"]["secretName"]
                secret = by_kind.get("Secret", {}).get(secret_name)
                if secret is not None:
                    items = dict(secret.get("stringData", {}))
                    items.update({k: None for k in secret.get("data", {})})
                elif any(c["spec"]["secretName"] == secret_name
                         for c in by_kind.get("Certificate", {}).values()):
                    # What cert-manager puts in a Certificate's secret.
                    items = {"tls.crt": None, "tls.key": None, "ca.crt": None}
                else:
                    raise Invalid("volume %s: no Secret or Certificate makes secret %s"
                                  % (volume["name"], secret_name))
            else:
                continue
            for key, content in items.items():
                files[mount["mountPath"].rstrip("/") + "/" + key] = (volume["name"], content)
    return files


def check_references(docs):
    pods = [(doc, doc["spec"]["template"]) for _, doc in docs
            if doc["kind"] in ("Deployment", "StatefulSet")]
    if not pods:
        raise Invalid("no Deployment or StatefulSet")
    for workload, template in pods:
        pod = template["spec"]
        labels = template["metadata"].get("labels", {})
        selector = workload["spec"]["selector"]["matchLabels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            raise Invalid("%s: selector %s does not match the pod labels" % (name(workload), selector))
        files = mounted_files(docs, pod)
        conf = files.get("/mosquitto/config/mosquitto.conf", (None, None))[1]
        if conf is None:
            raise Invalid("%s: no /mosquitto/config/mosquitto.conf mounted" % name(workload))
        wanted = set()
        for line in conf.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("cafile", "certfile", "keyfile", "plugin_opt_password_file",
                                                "plugin_opt_acl_file", "plugin_opt_config"):
                wanted.add(words[-1])
        toml = files.get("/mosquitto/config/mqttguard.toml", (None, ""))[1] or ""
        wanted.update(re.findall(r'^\s*revoked\s*=\s*"([^"]+)"', toml, re.M))
        for container in pod["containers"]:
            for arg in container.get("command", []) + container.get("args", []):
                wanted.update(p for p in re.findall(r"/mosquitto/[\w./-]+", arg))
        for path in sorted(wanted):
            if path not in files:
                raise Invalid("%s: %s is named in the configuration but no volume provides it"
                              % (name(workload), path))
        ports = {p["name"]: p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
        for _, doc in docs:
            if doc["kind"] != "Service":
                continue
            sel = doc["spec"].get("selector", {})
            if any(labels.get(k) != v for k, v in sel.items()):
                continue
            for port in doc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if target not in ports and target not in ports.values():
                    raise Invalid("%s: targetPort %s is not a port of %s" % (name(doc), target, name(workload)))
            for c in pod["containers"]:
                for probe in ("readinessProbe", "livenessProbe"):
                    tcp = c.get(probe, {}).get("tcpSocket")
                    if tcp and tcp["port"] not in ports and tcp["port"] not in ports.values():
                        raise Invalid("%s: %s port %s is not a container port" % (c["name"], probe, tcp["port"]))
    for _, doc in docs:
        if doc["kind"] == "Service" and not any(
                all(t["metadata"].get("labels", {}).get(k) == v
                    for k, v in doc["spec"].get("selector", {}).items()) for _, t in pods):
            raise Invalid("%s selects no pod of these manifests" % name(doc))
    return pods


def validate(docs):
    check_schemas(docs)
    return check_references(docs)


def extract(docs, pods, out):
    """The files a pod sees, with Secret-like modes (0640), under out/."""
    for _, template in pods:
        for path, (_, content) in mounted_files(docs, template["spec"]).items():
            if content is None:
                continue
            target = os.path.join(out, path.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as f:
                f.write(content)
            os.chmod(target, 0o640)


def self_test(docs):
    """Each mutation must be refused; returns the number refused."""
    def mutated(change):
        copied = copy.deepcopy(docs)
        change({name(d): d for _, d in copied})
        return copied

    def dep(d):
        return d["Deployment/mqttguard-broker"]["spec"]["template"]["spec"]

    mutations = {
        "unknown field in a container": lambda d: dep(d)["containers"][0].update(readOnly=True),
        "wrong type": lambda d: d["Deployment/mqttguard-broker"]["spec"].update(replicas="3"),
        "unknown ConfigMap": lambda d: dep(d)["volumes"][0]["configMap"].update(name="nope"),
        "ACL key missing": lambda d: d["ConfigMap/mqttguard-config"]["data"].pop("acl"),
        "revocation list missing": lambda d: d["Secret/mqttguard-auth"]["stringData"].pop("revoked.txt"),
        "bad Service port": lambda d: d["Service/mqttguard-broker"]["spec"]["ports"][0].update(targetPort="nope"),
        "Certificate field typo": lambda d: d["Certificate/mqttguard-server"]["spec"].update(dnsName=["x"]),
        "Certificate bad usage": lambda d: d["Certificate/mqttguard-server"]["spec"].update(usages=["server"]),
    }
    for what, change in mutations.items():
        try:
            validate(mutated(change))
        except (Invalid, KeyError) as e:
            print("  refused as expected (%s): %s" % (what, e))
            continue
        raise Invalid("self-test: a manifest with %s was accepted" % what)
    return len(mutations)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--extract")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    files = args.files or sorted(glob.glob(os.path.join(HERE, "*.yaml")))
    docs = load(files)
    try:
        pods = validate(docs)
        print("kubernetes: %d resources in %d files valid (Kubernetes %s, strict; cert-manager v1)"
              % (len(docs), len(files), KUBERNETES_VERSION))
        if args.self_test:
            n = self_test(docs)
            print("kubernetes: %d broken variants refused" % n)
        if args.extract:
            extract(docs, pods, args.extract)
    except Invalid as e:
        print("kubernetes: invalid: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
