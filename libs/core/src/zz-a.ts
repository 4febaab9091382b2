import { b } from './zz-b.js';
export const a = () => b;
