// Loading, empty and error states, the same everywhere.
import type { ReactNode } from 'react';

export function Loading({ what }: { what: string }) {
  return (
    <div className="state state-loading" role="status">
      <span className="spinner" /> Loading {what}…
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <strong>{title}</strong>
      {children && <div className="state-more">{children}</div>}
    </div>
  );
}

export function Failed({ error, retry }: { error: Error & { hint?: string }; retry?: () => void }) {
  return (
    <div className="state state-error" role="alert">
      <strong>{error.message}</strong>
      {error.hint && <div className="state-more">{error.hint}</div>}
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}
