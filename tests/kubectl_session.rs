//! A kubectl 1.32 session against `keelson server`, asserting on what kubectl prints.

mod common;

use std::time::Duration;

use common::server::{KeelsonServer, Out};

fn keelson() -> &'static str {
    env!("CARGO_BIN_EXE_keelson")
}

#[track_caller]
fn ok(s: &KeelsonServer, args: &[&str]) -> String {
    let out = s.kubectl(args);
    assert!(
        out.ok,
        "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\nserver log:\n{}",
        out.stdout,
        out.stderr,
        s.server_log()
    );
    out.stdout
}

#[track_caller]
fn fails(s: &KeelsonServer, args: &[&str]) -> Out {
    let out = s.kubectl(args);
    assert!(
        !out.ok,
        "kubectl {args:?} should have failed:\n{}",
        out.stdout
    );
    out
}

#[track_caller]
fn has(text: &str, want: &str) {
    assert!(text.contains(want), "expected {want:?} in:\n{text}");
}

/// A kubectl table: rows of whitespace-separated cells, header first.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

const APP_V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: demo
  labels: {app: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: busybox:1.36
        ports: [{containerPort: 8080}]
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
";

const WIDGET: &str = "apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: demo}
spec: {size: 3, color: red}
";

const EVENT: &str = "apiVersion: v1
kind: Event
metadata: {name: api.1, namespace: demo}
involvedObject: {kind: Deployment, name: api, namespace: demo, apiVersion: apps/v1}
reason: ScalingReplicaSet
message: Scaled up replica set api-1 to 2
type: Normal
source: {component: deployment-controller}
count: 1
firstTimestamp: \"2026-01-01T00:00:00Z\"
lastTimestamp: \"2026-01-01T00:00:00Z\"
";

#[test]
fn kubectl_session() {
    // The apiserver alone: the assertions look at objects exactly as written (a deployment
    // with no pods, deletions parked on their finalizers). tests/controllers.rs runs the same
    // commands with the scheduler and controllers acting on them.
    let s = KeelsonServer::start(keelson(), &["--disable", "scheduler,controllers"]);

    // Version, discovery, cluster info.
    let v = ok(&s, &["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&v).expect("version json");
    assert!(
        v["serverVersion"]["gitVersion"]
            .as_str()
            .is_some_and(|g| g.starts_with("v1.32")),
        "{v}"
    );
    let r = ok(&s, &["api-resources"]);
    let deploy = rows(&r)
        .into_iter()
        .find(|row| row.first().map(String::as_str) == Some("deployments"))
        .expect("deployments row");
    assert_eq!(
        deploy,
        vec!["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    has(&r, "customresourcedefinitions");
    let r = ok(&s, &["api-versions"]);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "coordination.k8s.io/v1",
        "apiextensions.k8s.io/v1",
    ] {
        assert!(r.lines().any(|l| l == gv), "{gv} in:\n{r}");
    }
    has(
        &ok(&s, &["cluster-info"]),
        &format!("is running at https://127.0.0.1:{}", s.port),
    );
    // Without a client certificate (a bearer token is not an identity keelson knows): 401,
    // which kubectl reports as a login failure. Health endpoints stay public.
    let admin = std::fs::read_to_string(s.kubeconfig()).expect("kubeconfig");
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .expect("CA data");
    let anon = s.file(
        "anonymous.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\nusers:\n- name: nobody\n  user: {{token: not-a-valid-token}}\ncontexts:\n- name: k\n  context: {{cluster: k, user: nobody}}\ncurrent-context: k\n",
            s.port
        ),
    );
    let denied = fails(&s, &["--kubeconfig", &anon, "get", "ns"]);
    has(&denied.stderr, "You must be logged in to the server");
    assert_eq!(
        ok(&s, &["--kubeconfig", &anon, "get", "--raw", "/readyz"]).trim(),
        "ok"
    );
    let ns = ok(&s, &["get", "ns", "-o", "name"]);
    for n in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/kube-public",
        "namespace/kube-node-lease",
    ] {
        has(&ns, n);
    }

    // Typed creates (protobuf request bodies).
    assert_eq!(
        ok(&s, &["create", "namespace", "demo"]).trim(),
        "namespace/demo created"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "create",
                "deployment",
                "web",
                "--image=nginx:1.25",
                "--replicas=3"
            ]
        )
        .trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "3"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "create",
                "configmap",
                "cfg",
                "--from-literal=a=b"
            ]
        )
        .trim(),
        "configmap/cfg created"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "create",
                "secret",
                "generic",
                "s1",
                "--from-literal=pw=x"
            ]
        )
        .trim(),
        "secret/s1 created"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "secret",
                "s1",
                "-o",
                "jsonpath={.data.pw}"
            ]
        ),
        "eA=="
    );
    assert_eq!(
        ok(
            &s,
            &["-n", "demo", "create", "job", "once", "--image=busybox"]
        )
        .trim(),
        "job.batch/once created"
    );
    // Without the controllers nobody creates the namespace's `default` account, and
    // ServiceAccount admission refuses pods of a missing account.
    let e = fails(
        &s,
        &[
            "-n",
            "demo",
            "run",
            "p0",
            "--image=busybox",
            "--restart=Never",
        ],
    );
    assert!(
        e.stderr.contains(
            "error looking up service account demo/default: serviceaccount \"default\" not found"
        ),
        "{}",
        e.stderr
    );
    assert_eq!(
        ok(&s, &["-n", "demo", "create", "serviceaccount", "default"]).trim(),
        "serviceaccount/default created"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "run",
                "p1",
                "--image=busybox",
                "--restart=Never",
                "--labels=app=p1"
            ]
        )
        .trim(),
        "pod/p1 created"
    );
    let pods = rows(&ok(&s, &["-n", "demo", "get", "pods"]));
    assert_eq!(pods[0], vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(&pods[1][..4], &["p1", "0/1", "Pending", "0"]);

    // Client-side apply: create, then a changed second apply.
    let app = s.file("app.yaml", APP_V1);
    assert_eq!(
        ok(&s, &["apply", "-f", &app]).trim(),
        "deployment.apps/api created"
    );
    let app2 = s.file("app2.yaml", &APP_V1.replace("replicas: 2", "replicas: 4"));
    assert_eq!(
        ok(&s, &["apply", "-f", &app2]).trim(),
        "deployment.apps/api configured"
    );
    assert_eq!(
        ok(&s, &["apply", "-f", &app2]).trim(),
        "deployment.apps/api unchanged"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "4"
    );

    // Server-side apply: a conflict with another manager, then --force-conflicts.
    ok(
        &s,
        &["-n", "demo", "scale", "deploy", "api", "--replicas=6"],
    );
    let conflict = fails(&s, &["apply", "--server-side", "-f", &app2]);
    has(&conflict.stderr, "conflict");
    has(&conflict.stderr, ".spec.replicas");
    assert_eq!(
        ok(
            &s,
            &["apply", "--server-side", "--force-conflicts", "-f", &app2]
        )
        .trim(),
        "deployment.apps/api serverside-applied"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "4"
    );

    // get in every output format.
    let wide = rows(&ok(&s, &["-n", "demo", "get", "deploy", "-o", "wide"]));
    assert_eq!(
        wide[0],
        vec![
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let web = wide.iter().find(|r| r[0] == "web").expect("web row");
    assert_eq!(&web[1..4], &["0/3", "0", "0"]);
    assert_eq!(&web[5..], &["nginx", "nginx:1.25", "app=web"]);
    let j: serde_json::Value = serde_json::from_str(&ok(
        &s,
        &["-n", "demo", "get", "deploy", "web", "-o", "json"],
    ))
    .expect("json");
    assert_eq!(j["kind"], "Deployment");
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    has(
        &ok(&s, &["-n", "demo", "get", "cm", "cfg", "-o", "yaml"]),
        "  a: b\n",
    );
    let cc = rows(&ok(
        &s,
        &[
            "-n",
            "demo",
            "get",
            "deploy",
            "-o",
            "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas",
            "--sort-by=.metadata.name",
        ],
    ));
    assert_eq!(
        cc,
        vec![vec!["NAME", "REPLICAS"], vec!["api", "4"], vec!["web", "3"]]
    );
    let all = ok(&s, &["get", "deploy", "-A"]);
    has(&all, "NAMESPACE");
    has(&all, "demo ");
    assert_eq!(
        ok(&s, &["get", "deploy", "-A", "-l", "app=web", "-o", "name"]).trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "pods",
                "--field-selector=status.phase=Pending",
                "-o",
                "name"
            ]
        )
        .trim(),
        "pod/p1"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "pods",
                "--field-selector=status.phase=Running",
                "-o",
                "name"
            ]
        )
        .trim(),
        ""
    );
    let labels = rows(&ok(
        &s,
        &["-n", "demo", "get", "deploy", "web", "--show-labels"],
    ));
    assert_eq!(labels[0].last().map(String::as_str), Some("LABELS"));
    assert_eq!(labels[1].last().map(String::as_str), Some("app=web"));

    // get -w sees a change made while it watches.
    let watch_out = s.dir.path().join("watch.out");
    let mut cmd = std::process::Command::new(&s.kubectl);
    cmd.arg("--kubeconfig")
        .arg(s.kubeconfig())
        .arg("--cache-dir")
        .arg(s.dir.path().join("kubectl-cache-w"));
    cmd.args(["-n", "demo", "get", "cm", "-w"]);
    cmd.stdout(std::fs::File::create(&watch_out).expect("watch out"))
        .stderr(std::process::Stdio::null());
    let mut watcher =
        common::ChildGuard::spawn("kubectl get -w", &mut cmd).expect("spawn kubectl get -w");
    let seen = |what: &str| {
        std::fs::read_to_string(&watch_out)
            .unwrap_or_default()
            .contains(what)
    };
    common::wait_until(
        Duration::from_secs(20),
        "kubectl get -w prints the initial list",
        || seen("cfg"),
    );
    ok(
        &s,
        &[
            "-n",
            "demo",
            "create",
            "configmap",
            "late",
            "--from-literal=x=1",
        ],
    );
    common::wait_until(
        Duration::from_secs(20),
        "kubectl get -w prints the new configmap",
        || seen("late"),
    );
    watcher.kill();

    // describe, label, annotate, patch of each type, scale, set image, replace.
    let d = ok(&s, &["-n", "demo", "describe", "deploy", "api"]);
    has(&d, "Name:                   api");
    has(&d, "Replicas:               4 desired");
    has(&d, "Image:         busybox:1.36");
    assert_eq!(
        ok(
            &s,
            &["-n", "demo", "label", "deploy", "api", "tier=backend"]
        )
        .trim(),
        "deployment.apps/api labeled"
    );
    assert_eq!(
        ok(
            &s,
            &["-n", "demo", "annotate", "deploy", "api", "note=hello"]
        )
        .trim(),
        "deployment.apps/api annotated"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "deploy",
                "-l",
                "tier=backend",
                "-o",
                "jsonpath={.items[*].metadata.annotations.note}"
            ]
        ),
        "hello"
    );
    ok(
        &s,
        &[
            "-n",
            "demo",
            "patch",
            "deploy",
            "api",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"minReadySeconds":5}}"#,
        ],
    );
    ok(
        &s,
        &[
            "-n",
            "demo",
            "patch",
            "deploy",
            "api",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
        ],
    );
    ok(
        &s,
        &[
            "-n",
            "demo",
            "patch",
            "deploy",
            "api",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"api","image":"busybox:1.37"}]}}}}"#,
        ],
    );
    let got = ok(&s, &["-n", "demo", "get", "deploy", "api", "-o", "jsonpath={.spec.minReadySeconds} {.spec.replicas} {.spec.template.spec.containers[*].image}"]);
    assert_eq!(got, "5 1 busybox:1.37");
    assert_eq!(
        ok(
            &s,
            &["-n", "demo", "scale", "deploy", "api", "--replicas=3"]
        )
        .trim(),
        "deployment.apps/api scaled"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "set",
                "image",
                "deploy/api",
                "api=busybox:1.38"
            ]
        )
        .trim(),
        "deployment.apps/api image updated"
    );
    let yaml = ok(&s, &["-n", "demo", "get", "deploy", "api", "-o", "yaml"]);
    let replaced = s.file("replace.yaml", &yaml.replace("replicas: 3", "replicas: 2"));
    assert_eq!(
        ok(&s, &["replace", "-f", &replaced]).trim(),
        "deployment.apps/api replaced"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}"
            ]
        ),
        "2 busybox:1.38"
    );

    // wait --for=jsonpath while another client changes the object.
    let waiter = std::thread::spawn({
        let kubectl = s.kubectl.clone();
        let kubeconfig = s.kubeconfig();
        let cache = s.dir.path().join("kubectl-cache-wait");
        move || {
            let mut cmd = std::process::Command::new(kubectl);
            cmd.args(["--kubeconfig"])
                .arg(kubeconfig)
                .arg("--cache-dir")
                .arg(cache);
            cmd.args([
                "-n",
                "demo",
                "wait",
                "--for=jsonpath={.spec.replicas}=5",
                "deploy/api",
                "--timeout=30s",
            ]);
            common::server::run_bounded(cmd, None, Duration::from_secs(40))
        }
    });
    ok(
        &s,
        &["-n", "demo", "scale", "deploy", "api", "--replicas=5"],
    );
    let waited = waiter.join().expect("waiter");
    assert!(waited.ok, "{waited:?}");
    has(&waited.stdout, "condition met");

    // explain reads the OpenAPI v3 documents.
    let e = ok(&s, &["explain", "pods.spec.containers"]);
    has(&e, "KIND:       Pod");
    has(&e, "FIELD: containers <[]Container>");
    has(&e, "image\t<string>");

    // Events, printed with kubectl's columns.
    let ev = s.file("event.yaml", EVENT);
    ok(&s, &["create", "-f", &ev]);
    let events = rows(&ok(&s, &["-n", "demo", "get", "events"]));
    assert_eq!(
        events[0],
        vec!["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(
        events[1].contains(&"ScalingReplicaSet".to_string())
            && events[1].contains(&"deployment/api".to_string()),
        "{events:?}"
    );

    // A CRD, then a custom resource created, listed, described and printed with its columns.
    let crd = s.file("crd.yaml", CRD);
    assert_eq!(
        ok(&s, &["apply", "-f", &crd]).trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    );
    ok(
        &s,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=20s",
        ],
    );
    let w = s.file("widget.yaml", WIDGET);
    assert_eq!(
        ok(&s, &["apply", "-f", &w]).trim(),
        "widget.example.com/w1 created"
    );
    let widgets = rows(&ok(&s, &["-n", "demo", "get", "widgets"]));
    // Declared printer columns replace the default Age column, as in Kubernetes.
    assert_eq!(widgets[0], vec!["NAME", "SIZE", "COLOR"]);
    assert_eq!(&widgets[1][..3], &["w1", "3", "red"]);
    assert_eq!(
        ok(&s, &["-n", "demo", "get", "wd", "-o", "name"]).trim(),
        "widget.example.com/w1"
    );
    let dw = ok(&s, &["-n", "demo", "describe", "widget", "w1"]);
    has(&dw, "Kind:         Widget");
    has(&dw, "Size:   3");

    // delete: background, foreground, orphan; wait --for=delete.
    assert_eq!(
        ok(&s, &["-n", "demo", "delete", "cm", "late"]).trim(),
        "configmap \"late\" deleted"
    );
    assert_eq!(
        s.kubectl(&["-n", "demo", "get", "cm", "late"])
            .stderr
            .trim(),
        "Error from server (NotFound): configmaps \"late\" not found"
    );
    ok(
        &s,
        &[
            "-n",
            "demo",
            "delete",
            "deploy",
            "web",
            "--cascade=foreground",
            "--wait=false",
        ],
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.metadata.finalizers}"
            ]
        ),
        r#"["foregroundDeletion"]"#
    );
    ok(
        &s,
        &[
            "-n",
            "demo",
            "delete",
            "cm",
            "cfg",
            "--cascade=orphan",
            "--wait=false",
        ],
    );
    assert_eq!(
        ok(
            &s,
            &[
                "-n",
                "demo",
                "get",
                "cm",
                "cfg",
                "-o",
                "jsonpath={.metadata.finalizers}"
            ]
        ),
        r#"["orphan"]"#
    );
    // The garbage collector finishes those; an owner-less object's finalizer removed by hand:
    ok(
        &s,
        &[
            "-n",
            "demo",
            "patch",
            "cm",
            "cfg",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    ok(
        &s,
        &[
            "-n",
            "demo",
            "wait",
            "--for=delete",
            "cm/cfg",
            "--timeout=20s",
        ],
    );
    ok(&s, &["-n", "demo", "delete", "pod", "p1", "--wait=false"]);
    ok(
        &s,
        &[
            "-n",
            "demo",
            "wait",
            "--for=delete",
            "pod/p1",
            "--timeout=20s",
        ],
    );
}
