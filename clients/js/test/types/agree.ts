// The package's event types are the hub's: each equal, field for field, to
// what the Rust structs serialise to (rust-events.ts, written by cargo test
// from src/events.rs), and the hub's error codes the same list.

import type { ChannelEvents, HubErrorCode, SeedEvents } from '@wshub/client';

import type { RustChannelEvents, RustErrorCode, RustEvents } from './rust-events.js';

/** true only for two identical types. */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

/** A type made of plain object literals, so an interface and its literal compare equal. */
type Plain<T> = T extends Array<infer I> ? Array<Plain<I>> : T extends object ? { [K in keyof T]: Plain<T[K]> } : T;

type EventTypes = Exclude<keyof SeedEvents, 'event'>;
export type SameEventTypes = Assert<Equals<EventTypes, keyof RustEvents>>;
export type SameEvents = Assert<Equals<{ [K in EventTypes]: Plain<SeedEvents[K]> }, { [K in keyof RustEvents]: Plain<RustEvents[K]> }>>;
export type SameChannels = Assert<Equals<keyof ChannelEvents, keyof RustChannelEvents>>;
export type SameChannelEvents = Assert<
  Equals<{ [K in keyof ChannelEvents]: Plain<ChannelEvents[K]> }, { [K in keyof RustChannelEvents]: Plain<RustChannelEvents[K]> }>
>;
export type SameErrorCodes = Assert<Equals<HubErrorCode, RustErrorCode>>;
