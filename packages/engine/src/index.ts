export { atomicWrite } from "./fs/atomic-write.js";
