/** Reading JSON files the kit wrote (plans, manifests, stored points): failures name the file. */
import { readFileSync } from "node:fs";
import { errorMessage, InputFileError } from "./errors.ts";

export function readJsonFile<T>(file: string, what = "JSON", hint?: string): T {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InputFileError(file, undefined, `cannot read ${what}: ${errorMessage(err)}`, hint);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new InputFileError(file, undefined, `corrupt ${what}: ${errorMessage(err)}`, hint);
  }
}
