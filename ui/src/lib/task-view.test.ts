import { describe, expect, it } from "vitest";
import type { ParamFieldInfo } from "./api";
import { buildParams, fieldControl, initialValue, initialValues, originLabel, untilTime } from "./task-view";

const f = (name: string, kind: string, extra: Partial<ParamFieldInfo> = {}): ParamFieldInfo => ({
  name,
  kind,
  title: null,
  description: null,
  default: null,
  required: false,
  choices: [],
  ...extra,
});

describe("the template form", () => {
  it("picks a control per kind", () => {
    expect(fieldControl(f("a", "string"))).toBe("text");
    expect(fieldControl(f("a", "integer"))).toBe("number");
    expect(fieldControl(f("a", "number"))).toBe("number");
    expect(fieldControl(f("a", "boolean"))).toBe("checkbox");
    expect(fieldControl(f("a", "string", { choices: ["x", "y"] }))).toBe("select");
    expect(fieldControl(f("a", "array"))).toBe("json");
    expect(fieldControl(f("a", "object"))).toBe("json");
  });

  it("fills defaults in from their JSON", () => {
    expect(initialValue(f("a", "string", { default: '"auto"' }))).toBe("auto");
    expect(initialValue(f("a", "integer", { default: "24" }))).toBe("24");
    expect(initialValue(f("a", "number", { default: "0.5" }))).toBe("0.5");
    expect(initialValue(f("a", "boolean", { default: "true" }))).toBe(true);
    expect(initialValue(f("a", "boolean"))).toBe(false);
    expect(initialValue(f("a", "array", { default: '["x","y"]' }))).toBe('["x","y"]');
    expect(initialValue(f("a", "object", { default: '{"k":1}' }))).toBe('{"k":1}');
    expect(initialValue(f("a", "string", { default: "not json" }))).toBe("not json");
    expect(initialValue(f("a", "string"))).toBe("");
  });

  it("types the values and leaves empty ones out", () => {
    const fields = [
      f("audio", "string", { required: true }),
      f("n", "integer"),
      f("x", "number"),
      f("flag", "boolean"),
      f("tags", "array"),
      f("list", "array"),
      f("opts", "object"),
      f("empty", "string"),
    ];
    const { params, errors } = buildParams(fields, {
      ...initialValues(fields),
      audio: "a.wav",
      n: " 3 ",
      x: "2.5",
      flag: true,
      tags: "a, b,\nc",
      list: '["x", 1]',
      opts: '{"k": "v"}',
    });
    expect(errors).toEqual({});
    expect(params).toEqual({ audio: "a.wav", n: 3, x: 2.5, flag: true, tags: ["a", "b", "c"], list: ["x", 1], opts: { k: "v" } });
  });

  it("says which fields cannot be read", () => {
    const fields = [f("n", "integer"), f("x", "number"), f("list", "array"), f("opts", "object")];
    const { errors } = buildParams(fields, { n: "1.5", x: "abc", list: "[1,", opts: "[1]" });
    expect(Object.keys(errors).sort()).toEqual(["list", "n", "opts", "x"]);
    expect(errors.n).toMatch(/whole number/);
    expect(errors.list).toMatch(/Not valid JSON/);
    expect(errors.opts).toMatch(/JSON object/);
  });
});

describe("labels", () => {
  it("reads origins and times to come", () => {
    expect(originLabel("app")).toBe("the app");
    expect(originLabel("schedule:digest")).toBe("schedule digest");
    expect(originLabel("robot")).toBe("robot");
    expect(untilTime(1000 + 3 * 3600_000, 1000)).toBe("in 3 h");
    expect(untilTime(1000 + 2 * 86_400_000, 1000)).toBe("in 2 days");
    expect(untilTime(1000 + 30_000, 1000)).toBe("in under a minute");
  });
});
