// The package ships no types; this is its one function we use (the slot Redis Cluster computes for a key).
declare module "cluster-key-slot" {
  function calculateSlot(key: string): number;
  export default calculateSlot;
}
