import { lazy, Suspense, useEffect, useRef } from 'react';
import type { QueryBoxHandle } from './QueryBox';
import { href, navigate, onLink, useLocation } from './router';
import { Search } from './Search';
import { Services } from './Services';
import { Empty, Loading } from './states';
import { TraceView } from './Trace';

// the map's layout engine (elkjs) is most of the bundle: loaded when the map is opened
const ServiceMap = lazy(() => import('./ServiceMap').then((m) => ({ default: m.ServiceMap })));

export function App() {
  const { path, params } = useLocation();
  const focusRef = useRef<QueryBoxHandle>(null);
  const tab = path === '/' || path === '/search' ? 'search' : path.startsWith('/trace/') ? 'trace' : path.slice(1);

  // `/` focuses the search box (and opens Search from any view: the box is focused once
  // Search has mounted, which happens after this handler, so the wish waits in a ref)
  const focusWanted = useRef(false);
  useEffect(() => {
    const on = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || t.closest('input, textarea, select, [contenteditable]')) return;
      e.preventDefault();
      if (tab === 'search') focusRef.current?.focus();
      else {
        focusWanted.current = true;
        navigate('/');
      }
    };
    window.addEventListener('keydown', on);
    return () => window.removeEventListener('keydown', on);
  }, [tab]);
  useEffect(() => {
    if (tab !== 'search' || !focusWanted.current) return;
    focusWanted.current = false;
    focusRef.current?.focus();
  }, [tab]);

  useEffect(() => {
    document.title = `${tab === 'trace' ? `Trace ${path.slice(7, 15)}` : tab === 'map' ? 'Service map' : tab[0]!.toUpperCase() + tab.slice(1)} · Osprey`;
  }, [tab, path]);

  let view;
  if (tab === 'search') view = <Search params={params} focusRef={focusRef} />;
  else if (tab === 'trace') view = <TraceView id={decodeURIComponent(path.slice('/trace/'.length))} params={params} />;
  else if (tab === 'services') view = <Services params={params} />;
  else if (tab === 'map')
    view = (
      <Suspense fallback={<Loading what="service map" />}>
        <ServiceMap params={params} />
      </Suspense>
    );
  else view = <Empty title="No such page">Try <a href="/">Search</a>.</Empty>;

  const ns = params.get('ns') ?? undefined;
  const since = params.get('since') ?? undefined;
  return (
    <>
      <nav className="top">
        <a href="/" onClick={onLink} className="brand">
          <img src="/favicon.svg" alt="" width={20} height={20} /> Osprey
        </a>
        <a href="/" onClick={onLink} className={tab === 'search' ? 'on' : ''}>
          Search
        </a>
        <a href={href('/services', { ns, since })} onClick={onLink} className={tab === 'services' ? 'on' : ''}>
          Services
        </a>
        <a href={href('/map', { ns, since })} onClick={onLink} className={tab === 'map' ? 'on' : ''}>
          Service map
        </a>
        <span className="spacer" />
        <span className="muted small">
          press <kbd>/</kbd> to search
        </span>
      </nav>
      <main>{view}</main>
    </>
  );
}
