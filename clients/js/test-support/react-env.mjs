// React in Node for the hooks' tests: jsdom for the page, react and react-dom
// from the scratch directory, and a resolve hook so that clients/js/react.js's
// own `import ... from 'react'` finds the same copy.

import { register } from 'node:module';

import { depsUrl, requireDep, waitFor } from './hub.mjs';

const resolver = `
export async function resolve(specifier, context, next) {
  if (specifier === 'react' || specifier.startsWith('react/')) {
    return next(specifier, { ...context, parentURL: ${JSON.stringify(depsUrl)} });
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(resolver)}`);

const { JSDOM } = requireDep('jsdom');
export const React = requireDep('react');
const { createRoot } = requireDep('react-dom/client');

// Updates come from sockets, not from act(): render as an app does.
globalThis.IS_REACT_ACT_ENVIRONMENT = false;

/** Loads clients/js/react.js (after the resolve hook is in place). */
export const loadHooks = () => import('../react.js');

/**
 * A page at `pageUrl`: `window`, `document` and `location` become globals.
 * Returns a function that takes them away again.
 */
export function openPage(pageUrl = 'http://127.0.0.1/') {
  const dom = new JSDOM('<!doctype html><div id="root"></div>', { url: pageUrl });
  const names = { window: dom.window, document: dom.window.document, location: dom.window.location };
  const saved = Object.fromEntries(Object.keys(names).map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]));
  for (const [name, value] of Object.entries(names)) {
    Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  return () => {
    for (const [name, descriptor] of Object.entries(saved)) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete globalThis[name];
    }
    dom.window.close();
  };
}

/**
 * Renders a component that calls `useHook(...args)` and keeps what it returned
 * in `probe.current` (and every value in `probe.renders`).
 */
export function renderHook(useHook, ...args) {
  return renderHookIn((element) => element, useHook, ...args);
}

/** renderHook, with the probe wrapped: `wrap(element)` returns what to render (a provider around it). */
export function renderHookIn(wrap, useHook, ...args) {
  const probe = { current: undefined, renders: [] };
  function Probe({ hookArgs }) {
    const value = useHook(...hookArgs);
    probe.current = value;
    probe.renders.push(value);
    return null;
  }
  const container = document.createElement('div');
  document.body.appendChild(container);
  const root = createRoot(container);
  root.render(wrap(React.createElement(Probe, { hookArgs: args })));
  probe.rerender = (...next) => root.render(wrap(React.createElement(Probe, { hookArgs: next })));
  probe.unmount = () => root.unmount();
  probe.until = (check, what) => waitFor(() => probe.current && check(probe.current), what);
  return probe;
}
