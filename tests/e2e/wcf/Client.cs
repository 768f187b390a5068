// A .NET client of Tessera's SOAP endpoint, as a SurePassID customer writes one: it calls the
// service only through the proxy that WCF tooling (`svcutil`) generated from the live `?wsdl`
// (compiled together with this file), over WCF's BasicHttpBinding.
//
// Usage: mono client.exe ENDPOINT_URL ACCOUNT KEY (sequence|probe)
//
// It talks to the test that runs it over stdin/stdout, one line at a time:
//   REPLY <Method> <json>   every reply object as the proxy deserialized it (DataContractJsonSerializer
//                           over the generated data contract, so a member the proxy failed to read shows
//                           up as null / 0)
//   ASK <what> <args...>    a question the test answers with one line (a code sent by SMS, an OATH code,
//                           a device to create)
//   UNREAD <Method> <names> the reply held elements the proxy did not recognise (kept aside in
//                           ExtensionData instead of filling members); printed before its REPLY
//   CHECK <text>            a check this client made and passed
//   DONE                    the sequence ran to its end
// A failed check throws: the exit code is non-zero and the message is on stderr.

using System;
using System.Collections;
using System.IO;
using System.Reflection;
using System.Runtime.Serialization;
using System.Runtime.Serialization.Json;
using System.ServiceModel;
using System.Text;

public static class WcfClient
{
    const string User = "wanda";
    const string Password = "S3cret!pw";

    static string account;
    static string key;

    public static int Main(string[] args)
    {
        if (args.Length != 4)
        {
            Console.Error.WriteLine("usage: client.exe ENDPOINT_URL ACCOUNT KEY (sequence|probe)");
            return 2;
        }
        account = args[1];
        key = args[2];
        var binding = new BasicHttpBinding();
        binding.SendTimeout = TimeSpan.FromSeconds(30);
        binding.ReceiveTimeout = TimeSpan.FromSeconds(30);
        var client = new SurePassAuthServerWCFServiceClient(binding, new EndpointAddress(args[0]));
        try
        {
            if (args[3] == "probe")
                Probe(client);
            else
                Sequence(client);
            client.Close();
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("FAILED: " + e);
            client.Abort();
            return 1;
        }
        Console.WriteLine("DONE");
        return 0;
    }

    /// One call whose reply is only shown: the test decides what it means.
    static void Probe(SurePassAuthServerWCFServiceClient c)
    {
        Show("FindUser", c.FindUser(account, key, "nobody-" + Guid.NewGuid().ToString("N")));
    }

    static void Sequence(SurePassAuthServerWCFServiceClient c)
    {
        // users
        Ok("AddUser", c.AddUser(account, key, User, "Wanda", "Client", "+1(800)200-8411", "wanda@example.com", Password, 0));
        var found = Ok("FindUser", c.FindUser(account, key, User));
        Check(found.FirstName == "Wanda" && found.LastName == "Client" && found.Email == "wanda@example.com"
              && found.Mobile == "+1(800)200-8411" && found.Username == User && found.UserStatus == 0,
              "FindUser returns the user's members");
        var valid = Ok("ValidateUser", c.ValidateUser(account, key, User, Password, false));
        Check(valid.Email == "wanda@example.com", "ValidateUser returns the user's members");
        var refused = Show("ValidateUser", c.ValidateUser(account, key, User, "wrong password", false));
        Check(refused.ErrorCode == 9001 && refused.ErrorMsg == "User login failure [wanda]", "ValidateUser with a wrong password is 9001");

        // session tokens
        var token = Ok("CreateSessionToken", c.CreateSessionToken(account, key, User, Password, 30, 1));
        Check(token.SessionTokenId != null && token.SessionTokenId.Length >= 43 && token.SessionTokenType == 1
              && token.ExpiresAt != null, "CreateSessionToken returns a token");
        var alive = Ok("IsSessionTokenValid", c.IsSessionTokenValid(account, key, User, token.SessionTokenId));
        Check(alive.ExpiresAt == token.ExpiresAt && alive.SessionTokenType == 1, "IsSessionTokenValid returns the token's expiry");
        Ok("ExpireSessionToken", c.ExpireSessionToken(account, key, User, token.SessionTokenId));
        var gone = Show("IsSessionTokenValid", c.IsSessionTokenValid(account, key, User, token.SessionTokenId));
        Check(gone.ErrorCode == 9107, "an expired token is 9107");

        // a passcode sent by SMS (deliveryMethod 0), validated once
        Ok("SendOTP", c.SendOTP(account, key, User, "", 0));
        var sent = Ask("sent-code", User);
        Ok("ValidateOTP", c.ValidateOTP(account, key, User, sent, ""));
        var replay = Show("ValidateOTP", c.ValidateOTP(account, key, User, sent, ""));
        Check(replay.ErrorCode == 9002, "a sent code is accepted once (9002)");

        // an OATH HOTP device (created by the test with a known seed), activated, used, resynchronised
        var device = Ask("oath-device", User).Split(' ');
        string psn = device[0], deviceId = device[1];
        var info = Ok("FindDevice", c.FindDevice(account, key, User, psn));
        Check(info.Psn == psn && info.DeviceId == deviceId && info.Username == User && info.Assigned == 1
              && info.DeviceType == 13 && info.OtpType == 1 && info.DeviceStatus == 0, "FindDevice returns the device's members");
        Ok("ActiveDevice", c.ActiveDevice(account, key, User, Ask("hotp", "0"), Ask("hotp", "1"), psn));
        Ok("ValidateOTP", c.ValidateOTP(account, key, User, Ask("hotp", "2"), psn));
        Ok("SynchronizeDevice", c.SynchronizeDevice(account, key, User, Ask("hotp", "20"), Ask("hotp", "21"), psn));
        Ok("ValidateOTP", c.ValidateOTP(account, key, User, Ask("hotp", "22"), psn));
        var qr = Ok("ProvisionQRCode", c.ProvisionQRCode(account, key, User, deviceId, "wanda@example.com"));
        Check(qr.QRCodeURL != null && qr.QRCodeURL.StartsWith("data:image/") && qr.OtpauthUri != null
              && qr.OtpauthUri.StartsWith("otpauth://hotp/") && qr.DeviceId == deviceId && qr.Psn == psn,
              "ProvisionQRCode returns the QR code and the otpauth URI");
        var withDevice = Ok("FindUser", c.FindUser(account, key, User));
        // SendOTP gave the user an out-of-band device; the OATH one is listed beside it
        Check(withDevice.Devices != null && withDevice.Devices.Length == 2
              && Array.Exists(withDevice.Devices, d => d.Psn == psn && d.TokenID == deviceId && d.DeviceType == 13),
              "FindUser lists the devices");

        // a U2F device record (the FIDO twin answers errorMessage "" on JSON, "OK" here)
        var enrolled = Ok("EnrollUser", c.EnrollUser(account, key, null, null, User, null, null, null, 12, 8, 0, 0, null, null, true, 0));
        Check(enrolled.ErrorMsg == "OK" && !string.IsNullOrEmpty(enrolled.Psn) && !string.IsNullOrEmpty(enrolled.DeviceId),
              "EnrollUser returns the new device");

        Ok("DeleteUser", c.DeleteUser(account, key, User, true));
        var deleted = Show("FindUser", c.FindUser(account, key, User));
        Check(deleted.ErrorCode == 9001 && deleted.Email == null, "a deleted user is 9001");
    }

    static T Show<T>(string method, T reply)
    {
        if (reply == null)
            throw new Exception(method + ": no reply object");
        // Elements the proxy did not recognise (another namespace, out of order) are kept aside in
        // ExtensionData instead of filling a member: report them, then show what was read.
        var extensible = reply as IExtensibleDataObject;
        if (extensible != null && extensible.ExtensionData != null)
        {
            var unread = UnreadElements(extensible.ExtensionData);
            if (unread.Length > 0)
                Console.WriteLine("UNREAD " + method + " " + unread);
            extensible.ExtensionData = null;
        }
        var serializer = new DataContractJsonSerializer(typeof(T));
        using (var buffer = new MemoryStream())
        {
            serializer.WriteObject(buffer, reply);
            Console.WriteLine("REPLY " + method + " " + Encoding.UTF8.GetString(buffer.ToArray()));
        }
        return reply;
    }

    /// The names of the elements kept aside in ExtensionData ("" if none). ExtensionDataObject
    /// exposes them only through its internal Members list.
    static string UnreadElements(ExtensionDataObject data)
    {
        const BindingFlags Internal = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance;
        var members = data.GetType().GetProperty("Members", Internal).GetValue(data, null) as IEnumerable;
        var names = new StringBuilder();
        if (members == null)
            return "";
        foreach (var m in members)
        {
            var t = m.GetType();
            names.Append(names.Length > 0 ? " " : "").Append("{" + t.GetProperty("Namespace", Internal).GetValue(m, null) + "}"
                                                            + t.GetProperty("Name", Internal).GetValue(m, null));
        }
        return names.ToString();
    }

    /// Shows the reply and checks ErrorCode 0 and ErrorMsg "OK".
    static T Ok<T>(string method, T reply)
    {
        Show(method, reply);
        int code = (int)typeof(T).GetProperty("ErrorCode").GetValue(reply, null);
        string msg = (string)typeof(T).GetProperty("ErrorMsg").GetValue(reply, null);
        Check(code == 0 && msg == "OK", method + " succeeds (ErrorCode " + code + ", ErrorMsg " + (msg ?? "null") + ")");
        return reply;
    }

    static void Check(bool ok, string what)
    {
        if (!ok)
            throw new Exception("check failed: " + what);
        Console.WriteLine("CHECK " + what);
    }

    static string Ask(string what, string arg)
    {
        Console.WriteLine("ASK " + what + " " + arg);
        Console.Out.Flush();
        var answer = Console.ReadLine();
        if (answer == null)
            throw new Exception("no answer to " + what);
        return answer.Trim();
    }
}
