// The testing guide's example specs (docs/snippets/testing/), run as they are shown: importing them
// registers their tests here.
import '../../docs/snippets/testing/model-client.spec.js';
import '../../docs/snippets/testing/http-client.spec.js';
