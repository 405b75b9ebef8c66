// The TraceQL box: highlighting from Grafana's TraceQL grammar (@grafana/lezer-traceql),
// syntax errors underlined, completion of tag names and values from the server's tag API.
import { parser } from '@grafana/lezer-traceql';
import { forwardRef, useEffect, useImperativeHandle, useMemo, useRef, useState } from 'react';
import { tagNames, tagValues } from './api';
import { later } from './hooks';

const CLASS: Record<string, string> = {
  String: 'tq-str',
  Integer: 'tq-num',
  Float: 'tq-num',
  Duration: 'tq-num',
  Static: 'tq-num',
  IntrinsicField: 'tq-intr',
  AttributeField: 'tq-attr',
  ComparisonOp: 'tq-op',
  FieldOp: 'tq-op',
  And: 'tq-op',
  Or: 'tq-op',
  Pipe: 'tq-op',
};

interface Piece {
  text: string;
  cls?: string;
}

/** the query cut into highlighted pieces (outermost classified node wins; errors marked) */
export function highlight(text: string): Piece[] {
  const marks: { from: number; to: number; cls: string }[] = [];
  const tree = parser.parse(text);
  tree.iterate({
    enter(n) {
      if (n.type.isError) {
        marks.push({ from: n.from, to: Math.max(n.to, n.from + 1), cls: 'tq-err' });
        return false;
      }
      const c = CLASS[n.type.name];
      if (c && n.to > n.from) {
        marks.push({ from: n.from, to: n.to, cls: c });
        return false;
      }
      return undefined;
    },
  });
  marks.sort((a, b) => a.from - b.from);
  const out: Piece[] = [];
  let at = 0;
  for (const m of marks) {
    if (m.from < at) continue;
    if (m.from > at) out.push({ text: text.slice(at, m.from) });
    out.push({ text: text.slice(m.from, Math.min(m.to, text.length)) || ' ', cls: m.cls });
    at = Math.min(m.to, text.length);
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}

const INTRINSICS = ['duration', 'name', 'status', 'kind', 'rootName', 'rootServiceName', 'traceDuration', 'statusMessage'];

interface Suggestion {
  label: string;
  /** replaces text[from, cursor) */
  insert: string;
  from: number;
}

export interface QueryBoxHandle {
  focus(): void;
}

export const QueryBox = forwardRef<QueryBoxHandle, { value: string; onChange(v: string): void; onRun(v: string): void }>(function QueryBox(
  { value, onChange, onRun },
  ref,
) {
  const ta = useRef<HTMLTextAreaElement>(null);
  const [names, setNames] = useState<string[]>([]);
  const [values, setValues] = useState<{ field: string; list: string[] }>({ field: '', list: [] });
  const [sugg, setSugg] = useState<Suggestion[]>([]);
  const [active, setActive] = useState(0);
  useImperativeHandle(ref, () => ({ focus: () => ta.current?.focus() }));

  useEffect(() => {
    const ac = new AbortController();
    later('background', ac.signal, () => tagNames(ac.signal))
      .then((scopes) => {
        const list: string[] = [];
        for (const s of scopes) for (const t of s.tags) list.push(s.name === 'intrinsic' ? t : `${s.name}.${t}`);
        setNames([...new Set([...INTRINSICS, ...list])]);
      })
      .catch(() => undefined);
    return () => ac.abort();
  }, []);

  const pieces = useMemo(() => highlight(value), [value]);

  function suggest(text: string, cursor: number) {
    const before = text.slice(0, cursor);
    const val = /((?:resource|span)?\.[\w.-]+|[a-zA-Z]+)\s*(?:=|!=|=~)\s*"?([^"]*)$/.exec(before);
    if (val) {
      const field = val[1]!;
      const typed = val[2]!;
      const from = cursor - typed.length - (before.endsWith(`"${typed}`) ? 1 : 0);
      const show = (list: string[]) =>
        setSugg(
          list
            .filter((v) => v.toLowerCase().includes(typed.toLowerCase()))
            .slice(0, 12)
            .map((v) => ({ label: v, insert: field === 'status' || field === 'kind' ? v : JSON.stringify(v), from })),
        );
      if (field === 'status') return show(['error', 'ok', 'unset']);
      if (field === 'kind') return show(['server', 'client', 'internal', 'producer', 'consumer']);
      if (values.field === field) return show(values.list);
      tagValues(field)
        .then((vs) => {
          const list = vs.map((v) => v.value);
          setValues({ field, list });
          show(list);
        })
        .catch(() => setSugg([]));
      return;
    }
    const name = /(?:^|[\s{(&|])((?:resource|span)?\.?[\w.-]*)$/.exec(before);
    if (name && name[1] && name[1].length >= 1) {
      const typed = name[1];
      const list = names.filter((n) => n.startsWith(typed) || n.includes(`.${typed.replace(/^\./, '')}`)).slice(0, 12);
      setSugg(list.filter((n) => n !== typed).map((n) => ({ label: n, insert: n, from: cursor - typed.length })));
      return;
    }
    setSugg([]);
  }

  function accept(s: Suggestion) {
    const cursor = ta.current?.selectionStart ?? value.length;
    const next = value.slice(0, s.from) + s.insert + value.slice(cursor);
    onChange(next);
    setSugg([]);
    const pos = s.from + s.insert.length;
    requestAnimationFrame(() => ta.current?.setSelectionRange(pos, pos));
  }

  return (
    <div className="qbox">
      <pre className="qbox-hl" aria-hidden="true">
        {pieces.map((p, i) => (
          <span key={i} className={p.cls}>
            {p.text}
          </span>
        ))}
        {'\n'}
      </pre>
      <textarea
        ref={ta}
        className="qbox-input"
        aria-label="TraceQL query"
        spellCheck={false}
        rows={1}
        value={value}
        onChange={(e) => {
          onChange(e.target.value);
          suggest(e.target.value, e.target.selectionStart);
          setActive(0);
        }}
        onBlur={() => setTimeout(() => setSugg([]), 150)}
        onKeyDown={(e) => {
          if (sugg.length) {
            if (e.key === 'ArrowDown') return (e.preventDefault(), setActive((a) => (a + 1) % sugg.length));
            if (e.key === 'ArrowUp') return (e.preventDefault(), setActive((a) => (a - 1 + sugg.length) % sugg.length));
            if (e.key === 'Tab' || (e.key === 'Enter' && !e.ctrlKey)) {
              e.preventDefault();
              return accept(sugg[active] ?? sugg[0]!);
            }
            if (e.key === 'Escape') return setSugg([]);
          }
          if (e.key === 'Enter') {
            e.preventDefault();
            setSugg([]);
            onRun(value);
          }
        }}
      />
      {sugg.length > 0 && (
        <ul className="qbox-sugg" role="listbox">
          {sugg.map((s, i) => (
            <li
              key={s.label}
              role="option"
              aria-selected={i === active}
              className={i === active ? 'active' : ''}
              onMouseDown={(e) => {
                e.preventDefault();
                accept(s);
              }}
            >
              {s.label}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
});
