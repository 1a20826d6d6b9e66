// signed-config web editor: a form generated from each service's JSON Schema.
// No build step: Vue's global build is vendored in vendor/.
"use strict";

const MASK = "**********";

function resolve(prop, root) {
  let p = prop || {};
  if (p.$ref) p = { ...root.$defs[p.$ref.split("/").pop()], ...p, $ref: undefined };
  if (p.allOf && p.allOf.length === 1) p = { ...resolve(p.allOf[0], root), ...p, allOf: undefined };
  if (p.anyOf) {
    const options = p.anyOf.filter((o) => o.type !== "null");
    const nullable = options.length < p.anyOf.length;
    if (options.length === 1) return { ...resolve(options[0], root), ...p, anyOf: undefined, nullable };
  }
  return p;
}

function kindOf(p) {
  if (p["x-secret"] || p.format === "password") return "secret";
  if (p.enum) return "enum";
  if (p.type === "boolean") return "boolean";
  if (p.type === "integer" || p.type === "number") return "number";
  if (p.type === "string") return "string";
  if (p.type === "object" && p.properties) return "object";
  return "json";
}

const FieldEditor = {
  name: "field-editor",
  props: ["name", "path", "prop", "root", "model", "errors"],
  data() { return { jsonText: "", jsonError: "" }; },
  computed: {
    p() { return resolve(this.prop, this.root); },
    kind() { return kindOf(this.p); },
    id() { return "f-" + this.path.join("-"); },
    error() { return this.errors[this.path.join(".")]; },
    label() {
      const own = this.prop && this.prop.title;
      return own || String(this.name).replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
    },
  },
  created() {
    if (this.kind === "json") this.jsonText = JSON.stringify(this.model[this.name], null, 1);
  },
  methods: {
    setNumber(event) {
      const raw = event.target.value;
      this.model[this.name] = raw === "" ? (this.p.nullable ? null : raw) : Number(raw);
    },
    setString(event) {
      const raw = event.target.value;
      this.model[this.name] = raw === "" && this.p.nullable ? null : raw;
    },
    setJson() {
      try { this.model[this.name] = JSON.parse(this.jsonText); this.jsonError = ""; }
      catch (e) { this.jsonError = "not valid JSON: " + e.message; }
    },
  },
  template: `
    <fieldset v-if="kind === 'object'">
      <legend>{{ label }}</legend>
      <p class="muted" v-if="p.description">{{ p.description }}</p>
      <field-editor v-for="(child, key) in p.properties" :key="key" :name="key" :path="[...path, key]"
                    :prop="child" :root="root" :model="model[name]" :errors="errors"></field-editor>
    </fieldset>
    <div v-else class="field" :class="{invalid: error || jsonError}">
      <label :for="id">{{ label }}<span class="secret-badge" v-if="kind === 'secret'">secret</span></label>
      <input v-if="kind === 'boolean'" :id="id" type="checkbox" v-model="model[name]">
      <select v-else-if="kind === 'enum'" :id="id" v-model="model[name]">
        <option v-for="o in p.enum" :key="o" :value="o">{{ o }}</option>
      </select>
      <input v-else-if="kind === 'number'" :id="id" type="number" :value="model[name]" @input="setNumber"
             :step="p.type === 'integer' ? 1 : 'any'" :min="p.minimum ?? p.exclusiveMinimum" :max="p.maximum ?? p.exclusiveMaximum">
      <input v-else-if="kind === 'secret'" :id="id" type="password" autocomplete="new-password"
             :value="model[name]" @input="setString" :placeholder="'${MASK} (unchanged)'">
      <input v-else-if="kind === 'string'" :id="id" type="text" :value="model[name] ?? ''" @input="setString">
      <textarea v-else :id="id" v-model="jsonText" @change="setJson"></textarea>
      <span class="help" v-if="p.description">{{ p.description }}</span>
      <span class="err" v-if="error">{{ error }}</span>
      <span class="err" v-if="jsonError">{{ jsonError }}</span>
    </div>`,
};

const app = Vue.createApp({
  data() {
    return {
      token: sessionStorage.getItem("signed-config-token") || "",
      tokenInput: "",
      services: [], presets: [], selected: null, schema: null,
      config: { version: 0, epoch: 0 }, draft: {}, instances: [], history: [],
      tab: "edit", problem: null, message: "", globalError: "",
    };
  },
  computed: {
    fieldErrors() {
      const out = {};
      for (const e of (this.problem && this.problem.errors) || []) {
        const loc = (e.loc || []).filter((x) => x !== "body" && x !== this.selected);
        out[loc.join(".")] = e.msg;
      }
      return out;
    },
  },
  mounted() { this.refresh(); },
  methods: {
    async api(method, path, body, headers = {}) {
      const init = { method, headers: { Accept: "application/json", ...headers } };
      if (this.token) init.headers.Authorization = "Bearer " + this.token;
      if (body !== undefined) {
        init.body = JSON.stringify(body);
        init.headers["Content-Type"] = init.headers["Content-Type"] || "application/json";
      }
      const resp = await fetch(path, init);
      const data = resp.status === 204 ? null : await resp.json().catch(() => null);
      if (!resp.ok) throw Object.assign(new Error((data && data.title) || resp.statusText), { status: resp.status, problem: data });
      return data;
    },
    saveToken() {
      this.token = this.tokenInput.trim();
      sessionStorage.setItem("signed-config-token", this.token);
      this.tokenInput = "";
      this.refresh();
    },
    async refresh() {
      this.globalError = "";
      try {
        this.services = await this.api("GET", "api/v1/services");
        this.presets = await this.api("GET", "api/v1/presets").catch(() => []);
        if (this.selected) await this.select(this.selected);
      } catch (e) {
        this.globalError = e.status === 401 ? "Enter an API token to continue." : "Cannot load services: " + e.message;
      }
    },
    async select(name) {
      this.selected = name; this.problem = null; this.message = "";
      const [schema, config, instances, history] = await Promise.all([
        this.api("GET", `api/v1/services/${name}/schema`),
        this.api("GET", `api/v1/configs/${name}`),
        this.api("GET", `api/v1/services/${name}/instances`).catch(() => []),
        this.api("GET", `api/v1/services/${name}/versions?limit=20`).catch(() => []),
      ]);
      this.schema = schema; this.config = config; this.instances = instances; this.history = history;
      this.draft = JSON.parse(JSON.stringify(config.values));
    },
    reload() { return this.select(this.selected); },
    async validate() {
      this.problem = null; this.message = "";
      try {
        await this.api("POST", `api/v1/configs/${this.selected}/validate`, this.draft, { "If-Match": this.config.etag });
        this.message = "Valid: saving would create version " + (this.config.version + 1) + ".";
      } catch (e) { this.problem = e.problem || { title: e.message }; }
    },
    async save() {
      this.problem = null; this.message = "";
      try {
        const result = await this.api("PUT", `api/v1/configs/${this.selected}`, this.draft, { "If-Match": this.config.etag });
        this.message = `Saved version ${result.version} (${result.publication}).`;
        await this.refresh();
        this.message = `Saved version ${result.version} (${result.publication}).`;
      } catch (e) {
        this.problem = e.problem || { title: e.message };
        if (e.status === 412) this.problem.detail = (this.problem.detail || "") + " Discard changes to load the current version.";
      }
    },
    async applyPreset(name) {
      this.problem = null; this.message = "";
      try {
        await this.api("POST", `api/v1/presets/${name}/apply`, {});
        await this.refresh();
        this.message = `Preset ${name} applied.`;
      } catch (e) { this.problem = e.problem || { title: e.message }; }
    },
  },
});
app.component("field-editor", FieldEditor);
app.mount("#app");
