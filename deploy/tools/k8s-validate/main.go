// k8s-validate checks rendered Kubernetes manifests (kustomize build output on stdin) without a
// cluster: each document of a built-in kind is decoded strictly into its k8s.io/api Go type (an
// unknown or misspelt field, a wrong type or an unparsable quantity is an error), then checked for
// what this project relies on: selectors that match their pod templates, resources on every
// container, probes on the container ports, references to ConfigMaps/Secrets/targets that exist.
// Custom resources (operators' kinds) are only checked here for apiVersion, kind and metadata.name,
// and must be on the list below, so a misspelt kind still fails; Strimzi's get a full check from
// deploy/tools/strimzi-validate.
//
//	kustomize build deploy/k8s/overlays/production | k8s-validate [-external-secret name]... [-json]
//
// -json: on success, print the documents as one JSON array (for tests) and the summary on stderr.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Custom resources we deploy through operators; their schemas are not checked here.
var customKinds = map[string]bool{
	"postgresql.cnpg.io/v1/Cluster":                   true,
	"kafka.strimzi.io/v1/Kafka":                       true,
	"kafka.strimzi.io/v1/KafkaNodePool":               true,
	"kafka.strimzi.io/v1/KafkaConnect":                true,
	"kafka.strimzi.io/v1/KafkaConnector":              true,
	"redis.redis.opstreelabs.in/v1beta2/RedisCluster": true,
}

type doc struct {
	apiVersion, kind, name string
	raw                    []byte
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var external listFlag
	flag.Var(&external, "external-secret", "a Secret created outside these manifests (may be repeated)")
	asJSON := flag.Bool("json", false, "print the validated documents as a JSON array")
	flag.Parse()
	docs, err := split(os.Stdin)
	if err != nil {
		fail([]string{err.Error()})
	}
	errs, counts := validate(docs, external)
	if len(errs) > 0 {
		fail(errs)
	}
	var kinds []string
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	summary := fmt.Sprintf("ok: %d documents (%s)\n", len(docs), strings.Join(kinds, " "))
	if !*asJSON {
		fmt.Print(summary)
		return
	}
	fmt.Fprint(os.Stderr, summary)
	out := []byte("[")
	for i, d := range docs {
		j, err := yaml.YAMLToJSON(d.raw)
		if err != nil {
			fail([]string{err.Error()})
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, j...)
	}
	os.Stdout.Write(append(out, ']', '\n'))
}

func fail(errs []string) {
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "error:", e)
	}
	os.Exit(1)
}

func split(r io.Reader) ([]doc, error) {
	var docs []doc
	var cur bytes.Buffer
	flush := func() error {
		b := bytes.TrimSpace(cur.Bytes())
		cur.Reset()
		if len(b) == 0 {
			return nil
		}
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(b, &head); err != nil {
			return fmt.Errorf("document %d: not YAML: %v", len(docs)+1, err)
		}
		docs = append(docs, doc{head.APIVersion, head.Kind, head.Metadata.Name, append([]byte(nil), b...)})
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " ") == "---" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		cur.Write(sc.Bytes())
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return docs, flush()
}

// decoders for the built-in kinds, keyed by apiVersion/kind.
func newTyped(key string) any {
	switch key {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "batch/v1/Job":
		return &batchv1.Job{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}
	}
	return nil
}

func validate(docs []doc, externalSecrets []string) ([]string, map[string]int) {
	var errs []string
	counts := map[string]int{}
	errf := func(d doc, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("%s %q: %s", d.kind, d.name, fmt.Sprintf(format, a...)))
	}
	configMaps, secrets, workloads := map[string]*corev1.ConfigMap{}, map[string]bool{}, map[string]*appsv1.Deployment{}
	for _, s := range externalSecrets {
		secrets[s] = true
	}
	var pods []struct {
		d    doc
		spec *corev1.PodSpec
	}
	var hpas []*autoscalingv2.HorizontalPodAutoscaler
	var pdbs []*policyv1.PodDisruptionBudget
	seen := map[string]bool{}

	for _, d := range docs {
		key := d.apiVersion + "/" + d.kind
		if d.apiVersion == "" || d.kind == "" || d.name == "" {
			errf(d, "apiVersion, kind and metadata.name are required")
			continue
		}
		if seen[key+"/"+d.name] {
			errf(d, "defined twice")
		}
		seen[key+"/"+d.name] = true
		counts[d.kind]++
		obj := newTyped(key)
		if obj == nil {
			if !customKinds[key] {
				errf(d, "unknown kind %s (not a built-in kind this validator knows, nor a listed custom resource)", key)
			}
			continue
		}
		if err := yaml.UnmarshalStrict(d.raw, obj); err != nil {
			errf(d, "does not match %s: %v", key, err)
			continue
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *corev1.Secret:
			secrets[o.Name] = true
		case *appsv1.Deployment:
			workloads[o.Name] = o
			checkSelector(d, o.Spec.Selector, o.Spec.Template.Labels, errf)
			pods = append(pods, struct {
				d    doc
				spec *corev1.PodSpec
			}{d, &o.Spec.Template.Spec})
		case *batchv1.Job:
			pods = append(pods, struct {
				d    doc
				spec *corev1.PodSpec
			}{d, &o.Spec.Template.Spec})
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		}
	}

	for _, p := range pods {
		checkPod(p.d, p.spec, configMaps, secrets, errf)
	}
	for _, h := range hpas {
		d := doc{kind: "HorizontalPodAutoscaler", name: h.Name}
		t := h.Spec.ScaleTargetRef
		if t.Kind != "Deployment" || workloads[t.Name] == nil {
			errf(d, "scaleTargetRef %s/%s is not a Deployment of these manifests", t.Kind, t.Name)
		} else if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas < 2 {
			errf(d, "minReplicas %d: fewer than 2 leaves no instance during a rollout or a node drain", *h.Spec.MinReplicas)
		}
		if h.Spec.MaxReplicas < 1 || len(h.Spec.Metrics) == 0 {
			errf(d, "needs maxReplicas and at least one metric")
		}
	}
	for _, b := range pdbs {
		d := doc{kind: "PodDisruptionBudget", name: b.Name}
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || sel.Empty() {
			errf(d, "needs a non-empty selector")
			continue
		}
		matched := false
		for _, w := range workloads {
			if sel.Matches(labels.Set(w.Spec.Template.Labels)) {
				matched = true
			}
		}
		if !matched {
			errf(d, "selector %s matches no Deployment's pods", sel)
		}
	}
	return errs, counts
}

func checkSelector(d doc, s *metav1.LabelSelector, podLabels map[string]string, errf func(doc, string, ...any)) {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil || sel.Empty() {
		errf(d, "needs a non-empty selector")
		return
	}
	if !sel.Matches(labels.Set(podLabels)) {
		errf(d, "selector %s does not match the pod template's labels %v", sel, podLabels)
	}
}

func checkPod(d doc, spec *corev1.PodSpec, configMaps map[string]*corev1.ConfigMap, secrets map[string]bool, errf func(doc, string, ...any)) {
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	if len(spec.Containers) == 0 {
		errf(d, "no containers")
	}
	for _, c := range all {
		if c.Image == "" {
			errf(d, "container %s: no image", c.Name)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				errf(d, "container %s: no %s request", c.Name, r)
			}
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			errf(d, "container %s: no memory limit", c.Name)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
			ports[fmt.Sprint(p.ContainerPort)] = true
		}
		for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
			if pr == nil || pr.HTTPGet == nil {
				continue
			}
			if !ports[pr.HTTPGet.Port.String()] {
				errf(d, "container %s: %s probe port %s is not a container port", c.Name, name, pr.HTTPGet.Port.String())
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil && (r.Optional == nil || !*r.Optional) {
				if cm := configMaps[r.Name]; cm == nil {
					errf(d, "container %s: env %s: no ConfigMap %s", c.Name, e.Name, r.Name)
				} else if _, ok := cm.Data[r.Key]; !ok {
					errf(d, "container %s: env %s: ConfigMap %s has no key %s", c.Name, e.Name, r.Name, r.Key)
				}
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil && (r.Optional == nil || !*r.Optional) && !secrets[r.Name] {
				errf(d, "container %s: env %s: no Secret %s (nor declared external)", c.Name, e.Name, r.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if r := ef.ConfigMapRef; r != nil && configMaps[r.Name] == nil && (r.Optional == nil || !*r.Optional) {
				errf(d, "container %s: envFrom: no ConfigMap %s", c.Name, r.Name)
			}
			if r := ef.SecretRef; r != nil && !secrets[r.Name] && (r.Optional == nil || !*r.Optional) {
				errf(d, "container %s: envFrom: no Secret %s (nor declared external)", c.Name, r.Name)
			}
		}
		if sc := c.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			if ps := spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
				errf(d, "container %s: runAsNonRoot is not set", c.Name)
			}
		}
	}
}
