// The one YAML style of every generated document.
import { stringify } from 'yaml';

export function yamlText(value: unknown): string {
  // lineWidth 0: never fold long strings (PromQL, descriptions) onto continuation lines;
  // no anchors/aliases for repeated objects: each tool that reads these files sees plain data
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
}
