// The part of the `hpack.js` package (no types of its own) that ./hpack.ts uses.
declare module 'hpack.js' {
  interface Entry {
    name: string;
    value: string;
    nameSize: number;
  }
  interface Table {
    maxSize: number;
    protocolMaxSize: number;
    lookup(index: number): Entry;
    add(name: string, value: string, nameSize: number, valueSize: number): void;
    updateSize(size: number): void;
  }
  interface Decoder {
    push(chunk: Buffer): void;
    isEmpty(): boolean;
    decodeBit(): number;
    decodeInt(): number;
    /** the raw octets (a Buffer, or the Huffman-decoded octets as an array) */
    decodeStr(): ArrayLike<number>;
  }
  const hpack: {
    table: { create(opts: { maxSize: number }): Table };
    decoder: { create(): Decoder };
    utils: { stringify(octets: ArrayLike<number>): string };
  };
  export default hpack;
  export type { Table, Decoder };
}
