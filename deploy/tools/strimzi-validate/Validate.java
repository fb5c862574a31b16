// Validates Strimzi custom resources against Strimzi's own API model (io.strimzi:api, what its
// operator deserializes them into): the apiVersion must be one the model serves, every field must
// exist with the right type (Strimzi keeps unknown fields instead of failing, so they are looked
// for explicitly), fields required in that apiVersion (@RequiredInVersions) must be present and
// numbers respect @Minimum. The CRDs' other constraints (patterns, one-of) are not checked.
//   k8s-validate -json < manifests | .state/bin/strimzi-validate-<hash>   (scripts/go-tool strimzi-validate)
// Reads a JSON array of Kubernetes objects on stdin, checks those of group kafka.strimzi.io, prints
// one summary line; exit status 1 with one line per problem.
import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.strimzi.api.kafka.model.common.UnknownPropertyPreserving;
import java.lang.annotation.Annotation;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

public class Validate {
  static final Map<String, String> KINDS = Map.of(
      "Kafka", "io.strimzi.api.kafka.model.kafka.Kafka",
      "KafkaNodePool", "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
      "KafkaConnect", "io.strimzi.api.kafka.model.connect.KafkaConnect",
      "KafkaConnector", "io.strimzi.api.kafka.model.connector.KafkaConnector",
      "KafkaTopic", "io.strimzi.api.kafka.model.topic.KafkaTopic",
      "KafkaUser", "io.strimzi.api.kafka.model.user.KafkaUser");

  public static void main(String[] args) throws Exception {
    ObjectMapper mapper = new ObjectMapper()
        .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, true)
        .configure(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES, true);
    JsonNode docs = mapper.readTree(System.in);
    List<String> errors = new ArrayList<>();
    int checked = 0;
    for (JsonNode doc : docs) {
      String apiVersion = doc.path("apiVersion").asText();
      if (!apiVersion.startsWith("kafka.strimzi.io/")) continue;
      String kind = doc.path("kind").asText();
      String name = kind + " \"" + doc.path("metadata").path("name").asText() + "\"";
      String cls = KINDS.get(kind);
      if (cls == null) {
        errors.add(name + ": no such Strimzi kind");
        continue;
      }
      Class<?> type = Class.forName(cls);
      @SuppressWarnings("unchecked")
      List<String> versions = (List<String>) type.getField("VERSIONS").get(null);
      String version = apiVersion.substring("kafka.strimzi.io/".length());
      if (!versions.contains(version)) {
        errors.add(name + ": apiVersion " + apiVersion + " is not served by Strimzi's API (serves " + versions + ")");
      }
      Object obj;
      try {
        obj = mapper.treeToValue(doc, type);
      } catch (Exception e) {
        errors.add(name + ": " + e.getMessage().split("\n")[0]);
        continue;
      }
      walk(obj, "", name, version, errors, new IdentityHashMap<>());
      checked++;
    }
    if (!errors.isEmpty()) {
      errors.forEach(e -> System.err.println("error: " + e));
      System.exit(1);
    }
    String apiJar = Validate.class.getClassLoader().getResource("io/strimzi/api/kafka/Crds.class").toString();
    System.out.println("ok: " + checked + " Strimzi resources match " + apiJar.replaceAll(".*/(api-[^/!]+\\.jar).*", "$1"));
  }

  // Unknown fields (kept by Strimzi's model, never used) and missing required ones, anywhere below.
  static final List<String> ORDER = List.of("v1alpha1", "v1beta1", "v1beta2", "v1");

  /** Does `version` fall in a RequiredInVersions range ("v1+", "v1beta2-v1", "v1")? */
  static boolean inRange(String version, String range) {
    int v = ORDER.indexOf(version);
    if (range.endsWith("+")) return v >= ORDER.indexOf(range.substring(0, range.length() - 1));
    if (range.contains("-")) {
      String[] ab = range.split("-");
      return v >= ORDER.indexOf(ab[0]) && v <= ORDER.indexOf(ab[1]);
    }
    return version.equals(range);
  }

  static Object annotationValue(Annotation a, String member) throws Exception {
    return a.annotationType().getMethod(member).invoke(a);
  }

  static void walk(Object o, String path, String name, String version, List<String> errors, IdentityHashMap<Object, Boolean> seen) throws Exception {
    if (o == null || seen.containsKey(o)) return;
    Class<?> c = o.getClass();
    if (c.isPrimitive() || o instanceof String || o instanceof Number || o instanceof Boolean || c.isEnum()) return;
    seen.put(o, true);
    if (o instanceof Map<?, ?> m) {
      for (Map.Entry<?, ?> e : m.entrySet()) walk(e.getValue(), path + "." + e.getKey(), name, version, errors, seen);
      return;
    }
    if (o instanceof Collection<?> list) {
      int i = 0;
      for (Object x : list) walk(x, path + "[" + i++ + "]", name, version, errors, seen);
      return;
    }
    if (!c.getName().startsWith("io.strimzi.") && !c.getName().startsWith("io.fabric8.")) return;
    if (o instanceof UnknownPropertyPreserving u && u.getAdditionalProperties() != null) {
      for (String k : u.getAdditionalProperties().keySet()) errors.add(name + ": unknown field " + path + "." + k);
    }
    for (Class<?> k = c; k != null && k != Object.class; k = k.getSuperclass()) {
      for (Method m : k.getDeclaredMethods()) {
        // The model's properties: its public getters (Jackson's view), named by @JsonProperty if set.
        String mn = m.getName();
        boolean getter = (mn.startsWith("get") && mn.length() > 3) || (mn.startsWith("is") && mn.length() > 2);
        if (!getter || m.getParameterCount() != 0 || Modifier.isStatic(m.getModifiers()) || !Modifier.isPublic(m.getModifiers())
            || m.isBridge() || mn.equals("getAdditionalProperties") || m.isAnnotationPresent(JsonIgnore.class)) continue;
        JsonProperty p = m.getAnnotation(JsonProperty.class);
        String bare = mn.substring(mn.startsWith("is") ? 2 : 3);
        String field = p != null && !p.value().isEmpty() ? p.value() : Character.toLowerCase(bare.charAt(0)) + bare.substring(1);
        m.setAccessible(true);
        Object v = m.invoke(o);
        if (p != null && p.required() && v == null) errors.add(name + ": missing required field " + path + "." + field);
        for (Annotation a : m.getAnnotations()) {
          String an = a.annotationType().getSimpleName();
          if (an.equals("RequiredInVersions") && v == null && inRange(version, (String) annotationValue(a, "value"))) {
            errors.add(name + ": missing field " + path + "." + field + " (required in " + version + ")");
          }
          if (an.equals("Minimum") && v instanceof Number n && n.doubleValue() < ((Number) annotationValue(a, "value")).doubleValue()) {
            errors.add(name + ": " + path + "." + field + " = " + n + " is below its minimum " + annotationValue(a, "value"));
          }
        }
        walk(v, path + "." + field, name, version, errors, seen);
      }
      for (Field f : k.getDeclaredFields()) {
        if (Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) continue;
        f.setAccessible(true);
        walk(f.get(o), path + "." + f.getName(), name, version, errors, seen);
      }
    }
  }
}
