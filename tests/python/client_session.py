"""The Python `kubernetes` client against keelson: CRUD, selectors, watch, patches, scale.

Run by tests/python_client.rs with the server's admin kubeconfig as the only argument.
Every check is an assert; the script prints one line per passed step.
"""

import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def step(name):
    print(f"ok {name}", flush=True)


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    ns = "pyclient"

    # CRUD.
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    names = [n.metadata.name for n in core.list_namespace().items]
    assert ns in names and "kube-system" in names, names
    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "web", "tier": "front"}),
        data={"mode": "fast"},
    )
    created = core.create_namespaced_config_map(ns, cm)
    assert created.metadata.uid and created.metadata.resource_version
    got = core.read_namespaced_config_map("settings", ns)
    assert got.data == {"mode": "fast"}, got.data
    got.data["mode"] = "safe"
    replaced = core.replace_namespaced_config_map("settings", ns, got)
    assert replaced.data["mode"] == "safe"
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    try:
        core.create_namespaced_config_map(ns, cm)
        raise AssertionError("a second create must fail")
    except ApiException as e:
        assert e.status == 409 and "AlreadyExists" in e.body, (e.status, e.body)
    try:
        core.read_namespaced_config_map("missing", ns)
        raise AssertionError("reading a missing object must fail")
    except ApiException as e:
        assert e.status == 404, e.status
    stale = got
    stale.data["mode"] = "stale"
    try:
        core.replace_namespaced_config_map("settings", ns, stale)
        raise AssertionError("a stale resourceVersion must conflict")
    except ApiException as e:
        assert e.status == 409 and "Conflict" in e.body, (e.status, e.body)
    step("crud")

    # Lists with label and field selectors.
    for name, tier in [("a", "front"), ("b", "back"), ("c", "back")]:
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels={"tier": tier}))
        )
    back = core.list_namespaced_config_map(ns, label_selector="tier=back")
    assert sorted(i.metadata.name for i in back.items) == ["b", "c"], back.items
    front = core.list_namespaced_config_map(ns, label_selector="tier in (front),app")
    assert [i.metadata.name for i in front.items] == ["settings"]
    one = core.list_namespaced_config_map(ns, field_selector="metadata.name=b")
    assert [i.metadata.name for i in one.items] == ["b"]
    not_b = core.list_namespaced_config_map(ns, field_selector="metadata.name!=b", label_selector="tier=back")
    assert [i.metadata.name for i in not_b.items] == ["c"]
    page = core.list_namespaced_config_map(ns, limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = core.list_namespaced_config_map(ns, limit=10, _continue=page.metadata._continue)
    # Ours, and the kube-root-ca.crt ConfigMap every namespace has.
    names = sorted(i.metadata.name for i in page.items + rest.items)
    assert names == ["a", "b", "c", "kube-root-ca.crt", "settings"], names
    step("selectors")

    # Watch without a resourceVersion: synthetic ADDED events first, then changes.
    seen = []
    w = watch.Watch()

    def later():
        time.sleep(0.5)
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="d", labels={"tier": "back"}))
        )

    t = threading.Thread(target=later)
    t.start()
    for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="tier=back", timeout_seconds=20):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["object"].metadata.name == "d":
            w.stop()
    t.join()
    initial = sorted(seen[:2])
    assert initial == [("ADDED", "b"), ("ADDED", "c")], seen
    assert seen[2] == ("ADDED", "d"), seen
    step("watch")

    # A Deployment patched with a dict (strategic merge), and its scale subresource.
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(name="web", image="nginx:1.25"),
                        client.V1Container(name="log", image="busybox:1.36"),
                    ]
                ),
            ),
        ),
    )
    apps.create_namespaced_deployment(ns, dep)
    patched = apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    )
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"web": "nginx:1.27", "log": "busybox:1.36"}, images
    assert patched.metadata.generation == 2, patched.metadata.generation
    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web", scale
    scaled = apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    assert scaled.spec.replicas == 5
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 5
    step("patch-and-scale")

    # Deletion.
    core.delete_namespaced_config_map("a", ns)
    try:
        core.read_namespaced_config_map("a", ns)
        raise AssertionError("deleted")
    except ApiException as e:
        assert e.status == 404
    apps.delete_namespaced_deployment("web", ns, propagation_policy="Background")
    assert not [d for d in apps.list_namespaced_deployment(ns).items if d.metadata.name == "web"]
    step("delete")
    print("all ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
