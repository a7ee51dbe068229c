import * as os from "os";

export default function () {
  return os.getenv("HOME");
}
