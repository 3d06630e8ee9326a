// What the READMEs' TypeScript snippets take as given: the application's own
// functions and values. tests/npm_package.rs puts each ```ts and ```tsx block
// of both READMEs in a file of its own and checks them, with these, under
// `tsc --strict`, so the READMEs cannot drift from the types.

declare const client: import('@wshub/client').WshubClient;
declare const url: string;
declare const token: string;
declare function getToken(): Promise<string>;
declare function showToast(level: string, message: string): void;
declare function toast(message: string): void;
declare function bar(chunks: number): void;
declare function reload(what: string): void;
declare function reloadFromServer(stream: string): void;
declare function render(...values: unknown[]): void;
declare function model(prompt: string): AsyncIterable<string>;
