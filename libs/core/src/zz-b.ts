import { a } from './zz-a.js';
export const b = () => a;
